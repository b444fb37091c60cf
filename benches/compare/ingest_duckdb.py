"""DuckDB side of ingest.sh: the per-customer features fedprof computes, in SQL."""
import sys

import duckdb

src, out = sys.argv[1], sys.argv[2]
reader = f"read_parquet('{src}')" if src.endswith(".parquet") else f"read_csv('{src}', header=true)"
con = duckdb.connect()
con.execute(f"""
COPY (
  WITH t AS (
    SELECT lower(trim(CAST(customer_id AS VARCHAR))) AS cid, CAST(date AS DATE) AS d,
           CAST(amount AS DECIMAL(18,2)) AS a, lower(trim(channel)) AS ch, lower(trim(category)) AS cat
    FROM {reader}
    WHERE customer_id IS NOT NULL AND date IS NOT NULL AND amount IS NOT NULL
      AND CAST(date AS DATE) <= DATE '2026-06-30' AND amount >= 0),
  days AS (SELECT cid, d, sum(a) AS total FROM t GROUP BY cid, d),
  firsts AS (SELECT cid, arg_min(total, d) AS first_total, min(d) AS first, max(d) AS last,
                    count(*) AS purchase_days, sum(total) AS total FROM days GROUP BY cid),
  mix AS (SELECT cid, count(*) AS txn_count,
                 avg(CAST(ch = 'branch' AS INT)) AS ch_branch, avg(CAST(ch = 'online' AS INT)) AS ch_online,
                 avg(CAST(ch = 'mobile' AS INT)) AS ch_mobile, avg(CAST(ch = 'atm' AS INT)) AS ch_atm,
                 avg(CAST(cat = 'groceries' AS INT)) AS c1, avg(CAST(cat = 'travel' AS INT)) AS c2,
                 avg(CAST(cat = 'utilities' AS INT)) AS c3, avg(CAST(cat = 'dining' AS INT)) AS c4,
                 avg(CAST(cat = 'fuel' AS INT)) AS c5
          FROM t GROUP BY cid)
  SELECT f.cid, m.txn_count, f.purchase_days, f.purchase_days - 1 AS frequency,
         f.last - f.first AS recency_days, DATE '2026-06-30' - f.first AS tenure_days,
         DATE '2026-06-30' - f.last AS days_since_last, f.total AS monetary_total,
         CASE WHEN f.purchase_days > 1 THEN (f.total - f.first_total) / (f.purchase_days - 1) ELSE 0 END
           AS monetary_mean_repeat,
         f.total / m.txn_count AS avg_ticket,
         m.* EXCLUDE (cid, txn_count)
  FROM firsts f JOIN mix m USING (cid)
) TO '{out}' (FORMAT parquet)
""")
print(con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0], "customers")
