#!/usr/bin/env python3
"""Reads killrun.py records (JSON lines, one per run) and prints the fault table.

Usage: table.py RUNS.jsonl [--markdown]

Rows: one per (victim kind, phase), then a total. Columns:
  runs            runs of that scenario
  job1 done       the in-flight job (job 1) completed for its analyst
  resumed         a profiling job 1 completed although its victim was killed mid-job
  job1 aborted    job 1 aborted (nothing released) or lost its analyst
  to nobody       job 1 recorded more releases in the coordinator's ledger than its analyst
                  received (the budget is spent on a result no one received)
  rerun paid      runs where a release the kill cut off after nodes had paid was run again
                  and paid again (from the job's retry_reserve; not a violation)
  next ok         job 2, after the restart, completed with all three nodes
  lost            ledger entries lost (a logged fsynced debit missing, a release an analyst
                  received missing, or a line that was on disk after job 1 gone or rewritten)
  double          double debits (a node ledger debiting one release id twice)
  twice           releases published twice (one release id twice in the coordinator ledger)
  mixed           profiling jobs whose releases cover different node sets
  paid twice      a node paying for a figure of a profiling job after it was published
  panic/exit      runs where a process panicked or a service exited non-zero on SIGTERM
  audit fail      runs where `fedprof audit verify` failed
  clean           runs with zero invariant violations
The last line is `RATIO faults-clean <clean runs / runs>`.
"""

import json
import sys
import re
from collections import Counter, OrderedDict

COLS = ["runs", "job1 done", "resumed", "job1 aborted", "to nobody", "rerun paid", "next ok", "lost",
        "double", "twice", "mixed", "paid twice", "panic/exit", "audit fail", "clean"]


def cause(job):
    """The analyst's last error line, with numbers, ids and addresses blanked so that runs
    group by cause."""
    lines = [l for l in job.get("detail", []) if l.strip()]
    err = next((l for l in reversed(lines) if "error" in l.lower()), lines[-1] if lines else "")
    err = re.sub(r"[0-9a-f]{8,}", "#", err)
    err = re.sub(r"\d+(\.\d+)?", "N", err)
    return err.strip()[:140]


def count(recs):
    row = dict.fromkeys(COLS, 0)
    for r in recs:
        v = r.get("violations", {"harness": r.get("harness_error")})
        jobs = r.get("jobs", [])
        row["runs"] += 1
        j1 = jobs[0]["outcome"] if jobs else "none"
        if j1 == "completed":
            row["job1 done"] += 1
            if r.get("profile"):
                row["resumed"] += 1
        else:
            row["job1 aborted"] += 1
            if r.get("job1_recorded", 0) > jobs[0].get("received", 0):
                row["to nobody"] += 1
        row["rerun paid"] += 1 if r.get("rerun_debits") else 0
        if len(jobs) > 1 and "next_job" not in v and "restart" not in v:
            row["next ok"] += 1
        lost = v.get("lost_entries", {})
        row["lost"] += sum(x for x in lost.values() if isinstance(x, int))
        row["double"] += sum(len(x) for x in v.get("double_debit", {}).values())
        row["twice"] += len(v.get("published_twice", []))
        row["mixed"] += len(v.get("mixed_sets", {}))
        row["paid twice"] += sum(len(x) for x in v.get("paid_twice", {}).values())
        row["panic/exit"] += 1 if ("panic" in v or "sigterm_exit" in v) else 0
        row["audit fail"] += 1 if "audit" in v else 0
        row["clean"] += 0 if v else 1
    return row


def main():
    path = sys.argv[1]
    md = "--markdown" in sys.argv
    recs = [json.loads(l) for l in open(path) if l.strip()]
    groups = OrderedDict()
    for r in sorted(recs, key=lambda r: (r.get("party", "?") != "coordinator", r.get("phase", "?"))):
        party = r.get("party", "?")
        kind = "coordinator" if party == "coordinator" else ("node" if party != "?" else "harness error")
        mode = "profile" if r.get("profile") else "totals"
        groups.setdefault(f"{kind} / {r.get('phase', '?')} / {mode}", []).append(r)
    rows = [(k, count(v)) for k, v in groups.items()] + [("total", count(recs))]
    head = ["scenario (victim / phase / job)"] + COLS
    if md:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for name, row in rows:
            cells = [f"**{name}**" if name == "total" else name] + [str(row[c]) for c in COLS]
            print("| " + " | ".join(cells) + " |")
    else:
        w = max(len(k) for k, _ in rows) + 2
        print(f"{head[0]:<{w}}" + "".join(f"{c:>13}" for c in COLS))
        for name, row in rows:
            print(f"{name:<{w}}" + "".join(f"{row[c]:>13}" for c in COLS))
    total = count(recs)
    causes = Counter()
    for r in recs:
        jobs = r.get("jobs", [])
        if jobs and jobs[0]["outcome"] != "completed":
            causes[f"{jobs[0]['outcome']}: {cause(jobs[0])}"] += 1
    if causes:
        print("job 1 not completed, by the analyst's last words:")
        for c, n in causes.most_common():
            print(f"  {n:>4}  {c}")
    for r in recs:
        if r.get("violations") or "harness_error" in r:
            print(f"violation: seed {r.get('seed')} {r.get('party')} {r.get('phase')} "
                  f"profile={r.get('profile')}: "
                  f"{json.dumps(r.get('violations', r.get('harness_error')))[:300]}")
    ratio = total["clean"] / total["runs"] if total["runs"] else 0.0
    print(f"RATIO faults-clean {ratio:.3f}")


if __name__ == "__main__":
    main()
