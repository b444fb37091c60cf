#!/usr/bin/env python3
"""Reference values for fedprof's zCDP -> (epsilon, delta) conversion, from Google's dp-accounting.

Which functions are called, and why:

* `dp_accounting.rdp.RdpAccountant` with `dp_event.ZCDpEvent(rho)`: dp-accounting represents
  rho-zCDP as the RDP curve `D_alpha <= rho * alpha` and converts RDP to (epsilon, delta) with
  `compute_epsilon` / `compute_delta` in `rdp_privacy_accountant.py`, which implement the tight
  conversion of Canonne, Kamath and Steinke 2020 (arXiv:2004.00010, Proposition 12 in v4; also
  Asoodeh et al. 2020, arXiv:2001.05990, Eq. 20):

      epsilon(alpha) = r(alpha) + log1p(-1/alpha) - log(delta * alpha) / (alpha - 1),

  minimised over the accountant's list of orders (plus a KL shortcut: epsilon = 0 when
  delta^2 > 1 - exp(-r)). fedprof minimises the same function over *continuous* alpha, so the
  accountant is given a dense grid of orders (`DENSE_ORDERS`, about 2e5 orders between 1.0101
  and 1e4) to make the grid minimum agree with the continuous one to well within 1e-6 relative.
  The value over the library's `DEFAULT_RDP_ORDERS` is recorded too (it can only be larger).
* Compositions use `dp_event.GaussianDpEvent(noise_multiplier = sigma / Delta)` inside
  `ComposedDpEvent` / `SelfComposedDpEvent`, so dp-accounting also checks the Gaussian
  mechanism's RDP (alpha Delta^2 / (2 sigma^2)) and composition independently of fedprof's exact
  rho; the exact rho (a fraction, from Python's `fractions`) is recorded for the Rust test to
  compare with its own exact sum.

Output: JSON (see `--out`), read by `privacy/tests/reference.rs`.
"""

import argparse
import datetime
import json
import math
import os
import sys
from fractions import Fraction

# This file's name shadows the `dp_accounting` package: drop its own folder from the path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import numpy as np  # noqa: E402

import dp_accounting  # noqa: E402
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant as rdp

DELTAS = [1e-5, 1e-6, 1e-9]
# 2: the node's default period cap; 24: a year of monthly default caps (lifetime, H5); 9/2 and
# 27/8: group privacy, 3^2 * 1/2 and a per-release min(K, n)^2 sum (H4).
RHOS = ["1/100", "1/10", "1/2", "1", "5", "2", "24", "9/2", "27/8"]

# Orders alpha = 1 + beta, beta log-spaced. dp-accounting ignores the CKS bound below 1.01.
DENSE_ORDERS = list(1.0 + np.geomspace(0.0101, 1.0e4, 200_001))

# (name, [(count, Delta^2, sigma^2), ...]) with exact rational Delta^2 and sigma^2.
COMPOSITIONS = [
    ("three releases", [(1, "1", "4"), (1, "2", "25"), (1, "1", "9/4")]),
    ("k-means, 10 iterations of counts and clipped sums", [(10, "2", "100")]),
    ("histogram then 5 sums", [(1, "1", "2500/3"), (5, "10000", "4000000")]),
    ("100 small releases", [(100, "1", "1000")]),
]

# (rho, epsilon) for the epsilon -> delta direction, chosen so that delta is small (the KL
# shortcut, delta <= sqrt(1 - exp(-rho)), is then not the binding bound).
EPS_TO_DELTA = [("1/10", "1"), ("1/10", "2"), ("1", "5"), ("1/2", "3"), ("5", "20")]


def frac(text):
    return Fraction(text)


def fstr(x):
    return f"{x.numerator}/{x.denominator}"


def zcdp_epsilon(rho, delta, orders):
    acc = rdp.RdpAccountant(orders=orders)
    acc.compose(dp_event.ZCDpEvent(rho=float(rho)))
    return acc.get_epsilon_and_optimal_order(delta)


def zcdp_delta(rho, epsilon, orders):
    acc = rdp.RdpAccountant(orders=orders)
    acc.compose(dp_event.ZCDpEvent(rho=float(rho)))
    return acc.get_delta_and_optimal_order(epsilon)


def gaussian_event(delta_sq, sigma_sq):
    return dp_event.GaussianDpEvent(noise_multiplier=math.sqrt(float(sigma_sq / delta_sq)))


def composition_event(parts):
    events = []
    for count, d2, s2 in parts:
        ev = gaussian_event(frac(d2), frac(s2))
        events.append(ev if count == 1 else dp_event.SelfComposedDpEvent(ev, count))
    return dp_event.ComposedDpEvent(events)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()

    rho_rows = []
    for rho_text in RHOS:
        rho = frac(rho_text)
        for delta in DELTAS:
            eps, order = zcdp_epsilon(rho, delta, DENSE_ORDERS)
            eps_default, _ = zcdp_epsilon(rho, delta, rdp.DEFAULT_RDP_ORDERS)
            rho_rows.append({
                "rho": fstr(rho),
                "delta": delta,
                "epsilon": float(eps),
                "optimal_order": float(order),
                "epsilon_default_orders": float(eps_default),
            })

    comp_rows = []
    for name, parts in COMPOSITIONS:
        rho = sum((count * frac(d2) / (2 * frac(s2)) for count, d2, s2 in parts), Fraction(0))
        for delta in DELTAS:
            acc = rdp.RdpAccountant(orders=DENSE_ORDERS)
            acc.compose(composition_event(parts))
            eps, order = acc.get_epsilon_and_optimal_order(delta)
            comp_rows.append({
                "name": name,
                "mechanisms": [
                    {"count": c, "sensitivity_sq": fstr(frac(d2)), "variance": fstr(frac(s2))}
                    for c, d2, s2 in parts
                ],
                "rho": fstr(rho),
                "delta": delta,
                "epsilon": float(eps),
                "optimal_order": float(order),
            })

    delta_rows = []
    for rho_text, eps_text in EPS_TO_DELTA:
        rho, eps = frac(rho_text), float(frac(eps_text))
        delta, order = zcdp_delta(rho, eps, DENSE_ORDERS)
        delta_rows.append({
            "rho": fstr(rho),
            "epsilon": eps,
            "delta": float(delta),
            "optimal_order": float(order),
        })

    out = {
        "generator": "benches/compare/dp_accounting.py",
        "dp_accounting_version": getattr(dp_accounting, "__version__", "0.6.0"),
        "numpy_version": np.__version__,
        "generated": datetime.date.today().isoformat(),
        "method": (
            "RdpAccountant(orders=DENSE_ORDERS) composed with ZCDpEvent(rho) or "
            "GaussianDpEvent(sigma/Delta); get_epsilon_and_optimal_order(delta) / "
            "get_delta_and_optimal_order(epsilon): the tight CKS20 RDP conversion "
            "minimised over a dense grid of orders"
        ),
        "dense_orders": {"count": len(DENSE_ORDERS), "min": DENSE_ORDERS[0], "max": DENSE_ORDERS[-1]},
        "rho_to_epsilon": rho_rows,
        "compositions": comp_rows,
        "epsilon_to_delta": delta_rows,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}: {len(rho_rows)} rho cases, {len(comp_rows)} compositions, "
          f"{len(delta_rows)} epsilon->delta cases")


if __name__ == "__main__":
    main()
