"""Writes a seeded transaction table and lifetimes' summary of it (see lifetimes_reference.sh)."""
import random
import sys
from pathlib import Path

import pandas as pd
from lifetimes.utils import summary_data_from_transaction_data

AS_OF = "2026-06-30"

def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261126)
    rows = []
    for c in range(400):
        cid = f"cust{c:04d}"
        first = pd.Timestamp("2024-07-01") + pd.Timedelta(days=rng.randrange(0, 730))
        n = rng.choice([1, 1, 2, 3, 5, 8, 13])
        for _ in range(n):
            day = first + pd.Timedelta(days=rng.randrange(0, 120))
            # Several rows on one day are common: lifetimes sums them into one purchase day.
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                ts = day + pd.Timedelta(seconds=rng.randrange(0, 86400))
                cents = rng.randrange(100, 50000)
                rows.append((cid, ts.strftime("%Y-%m-%d %H:%M:%S"), f"{cents // 100}.{cents % 100:02d}"))
    rng.shuffle(rows)
    tx = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])
    tx.to_csv(out / "transactions.csv", index=False)
    tx["timestamp"] = pd.to_datetime(tx["timestamp"])
    tx["amount"] = tx["amount"].astype(float)
    s = summary_data_from_transaction_data(
        tx, "customer_id", "timestamp", monetary_value_col="amount",
        observation_period_end=AS_OF, freq="D",
    )
    s = s.reset_index().sort_values("customer_id")
    s[["customer_id", "frequency", "recency", "T", "monetary_value"]].to_csv(
        out / "expected.csv", index=False, float_format="%.10f")
    print(f"{len(tx)} rows, {len(s)} customers -> {out}")

if __name__ == "__main__":
    main(Path(sys.argv[1]))
