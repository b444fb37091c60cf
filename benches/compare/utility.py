"""k-means utility of fedprof's profiling job against the non-private pooled k-means and
diffprivlib's central DP KMeans; run by benches/compare/utility.sh.

Inputs (written by `cargo bench --bench utility`): points.csv (the pooled customers' points in
the normalized k-means space [0, 1]^3, exactly the fixed-point points fedprof clusters) and
fedprof.json (fedprof's costs, count errors and centroids per rho and noise setting).

Cost everywhere: the mean over the pooled points of the squared Euclidean distance to the
nearest centroid, in [0, 1]^3.

Epsilon: diffprivlib is pure epsilon-DP, and pure epsilon-DP implies (epsilon^2 / 2)-zCDP
(Bun and Steinke 2016, Prop. 1.4). So diffprivlib at epsilon = sqrt(2 rho) is at least as
private as fedprof's rho-zCDP job: rho = 0.05, 0.5, 2 give epsilon = 0.316, 1, 2. The whole
job's rho also pays for histograms, RFM and lifecycle profiles; fedprof's centroids use the
distributions release (initialization, 2/10 of rho) and the Lloyd iterations (3/10), so a
second diffprivlib column gets only that half: epsilon = sqrt(2 rho / 2).

Usage: python utility.py POINTS.csv FEDPROF.json [--seeds N]
The last line is `RATIO kmeans-cost <fedprof cost / non-private cost>` at rho = 0.5
(epsilon = 1 by the conversion above), fedprof in the distributed setting n_min = 3, c = 0.
"""

import argparse
import json
import math
import sys
import time
import warnings

import numpy as np
from sklearn.cluster import KMeans

import diffprivlib
import sklearn
from diffprivlib.models import KMeans as DPKMeans

K = 5


def cost(points, centers):
    """Mean squared distance to the nearest center."""
    c = np.asarray(centers, dtype=np.float64)
    d2 = ((points[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
    return float(d2.min(axis=1).mean())


def diffprivlib_cost(points, epsilon, seeds):
    costs = []
    for seed in range(seeds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = DPKMeans(
                n_clusters=K,
                epsilon=epsilon,
                bounds=([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
                random_state=seed,
            ).fit(points)
        costs.append(cost(points, m.cluster_centers_))
    return float(np.mean(costs)), float(np.std(costs, ddof=1)) if seeds > 1 else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("points")
    ap.add_argument("fedprof")
    ap.add_argument("--seeds", type=int, default=5)
    a = ap.parse_args()

    points = np.loadtxt(a.points, delimiter=",", skiprows=1, dtype=np.float64)
    with open(a.fedprof) as f:
        fed = json.load(f)
    by = {(r["rho"], r["setting"]): r for r in fed["results"]}
    rhos = sorted({r["rho"] for r in fed["results"]})

    t = time.time()
    base = KMeans(n_clusters=K, n_init=10, random_state=0).fit(points)
    nonprivate = cost(points, base.cluster_centers_)
    print(
        f"non-private: sklearn {sklearn.__version__} KMeans(k={K}, n_init=10) on {len(points)} pooled points: "
        f"cost {nonprivate:.5f} ({time.time() - t:.1f} s)",
        file=sys.stderr,
    )

    rows = []
    for rho in rhos:
        eps = math.sqrt(2 * rho)
        eps_half = math.sqrt(rho)
        dp, dp_sd = diffprivlib_cost(points, eps, a.seeds)
        dp_half, _ = diffprivlib_cost(points, eps_half, a.seeds)
        rows.append((rho, eps, eps_half, dp, dp_sd, dp_half))
        print(f"rho {rho}: diffprivlib eps {eps:.3f} cost {dp:.5f}, eps {eps_half:.3f} cost {dp_half:.5f}", file=sys.stderr)

    settings = ["dist-3-1", "dist-4-1", "demo-2-1", "noise-free"]
    print(
        f"k-means cost on the bank scenario: {fed['customers']} customers at {fed['nodes']} nodes "
        f"({fed['pooled_rows']} pooled rows), k = {K}; fedprof {fed.get('iterations', 5)} Lloyd iterations, mean of {fed['reps']} runs, "
        f"diffprivlib {diffprivlib.__version__} mean of {a.seeds} seeds; epsilon = sqrt(2 rho)"
    )
    print()
    print(
        "| rho | epsilon | non-private | fedprof dist n_min=3 c=1 | fedprof 3 honest shares (n_min=4 c=1) "
        "| fedprof demo n_min=2 c=1 | fedprof noise-free | diffprivlib eps | diffprivlib eps=sqrt(rho) "
        "| fedprof dist / non-private | diffprivlib / non-private |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rho, eps, eps_half, dp, dp_sd, dp_half in rows:
        c = {s: by[(rho, s)]["cost"] for s in settings if (rho, s) in by}
        print(
            f"| {rho:g} | {eps:.3f} | {nonprivate:.5f} | {c['dist-3-1']:.5f} | {c['dist-4-1']:.5f} "
            f"| {c['demo-2-1']:.5f} | {c['noise-free']:.5f} | {dp:.5f} (sd {dp_sd:.5f}) | {dp_half:.5f} "
            f"| {c['dist-3-1'] / nonprivate:.3f} | {dp / nonprivate:.3f} |"
        )
    print()
    print("Final-cluster size error (released - exact), RMS over clusters and runs, / central-DP sd:")
    print()
    print("| rho | central sd (customers) | dist n_min=3 c=1 | 3 honest shares (n_min=4 c=1) | demo n_min=2 c=1 | expected, same order |")
    print("|---:|---:|---:|---:|---:|---|")
    for rho in rhos:
        r = {s: by[(rho, s)] for s in settings[:3]}
        print(
            f"| {rho:g} | {r['dist-3-1']['central_sd']:.2f} "
            + " ".join(
                f"| {r[s]['count_error_ratio']:.3f} (all coords {r[s]['coordinate_ratio']:.3f})" for s in settings[:3]
            )
            + " | "
            + " / ".join(f"{r[s]['expected_ratio']:.3f}" for s in settings[:3])
            + " |"
        )
    print()
    target = min(rhos, key=lambda x: abs(math.sqrt(2 * x) - 1.0))
    ratio = by[(target, "dist-3-1")]["cost"] / nonprivate
    print(
        f"rho {target:g} (epsilon = sqrt(2 rho) = {math.sqrt(2 * target):.3f}): fedprof {by[(target, 'dist-3-1')]['cost']:.5f}, "
        f"non-private {nonprivate:.5f}, diffprivlib {dict((r[0], r[3]) for r in rows)[target]:.5f}"
    )
    print(f"RATIO kmeans-cost {ratio:.3f}")


if __name__ == "__main__":
    main()
