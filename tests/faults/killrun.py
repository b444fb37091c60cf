#!/usr/bin/env python3
"""One seeded kill -9 run against the real `fedprof` binary.

What a run does (everything under --work DIR, which must not exist or be empty):

1. `fedprof federation init` (coordinator, nodes branch-1..3, analyst `a`, auditor), then
   `fedprof gen-data --scenario bank` for the three branches; the generated configs get short
   timeouts (idle 5 s, phase deadline 20 s, reconnect backoff at most 2 s) and budgets large
   enough for every job of the run (`cap_rho`, the floors, the analyst's period quota).
2. Starts `udp_impair.py` on loopback between everybody and the coordinator, with a fixed
   one-way delay (default 40 ms, no loss): every protocol phase then lasts at least one round
   trip, so a kill can be aimed at a phase (see PHASES below). The proxy is the only path to
   the coordinator (the configs dial it).
3. Starts `fedprof coordinator` and three `fedprof node` processes, waits until all three are
   registered, submits job 1 as the analyst (`fedprof job submit`, a totals feature query, or a
   short profiling job with --profile), and kills the victim with SIGKILL at the chosen phase
   of the chosen release of that job. The seed picks victim, phase, release and restart delay
   unless --party/--phase are given.
4. Restarts the victim after the seeded delay while job 1 is still in flight (as a supervisor
   would), waits until all three nodes are registered again, then waits for job 1's analyst to
   end (completed, aborted or lost; a profiling job re-runs a release the kill cut off, paid
   from its retry_reserve) and submits job 2, which must complete with all three nodes.
5. Stops everything with SIGTERM, copies the node ledgers into ledgers/, runs
   `fedprof audit verify`, and reads the JSON-lines ledgers itself.

Prints one JSON object (the run's record) on stdout; progress goes to stderr. Exit status 0
when the run has no invariant violation, 1 when it has, 2 when the harness itself failed.

Invariants checked (each a key of "violations" when broken):
  audit            `fedprof audit verify` passes on the ledgers after the run
  lost_entries     every debit a node logged as fsynced ("release debited") is in its ledger,
                   and every release an analyst received is in the coordinator's ledger
  double_debit     no node ledger debits one release id (job, round, nonce) twice
  published_twice  no release id appears twice in the coordinator's ledger
  mixed_sets       all releases of one profiling job (same profile id) have the same nodes
  next_job         job 2 after the restart completes with all three nodes
  restart          the victim starts again and the nodes register again
Also recorded, not violations: job ids reused after a coordinator restart (same (job, round),
another nonce), what job 1's outcome was, and whether the victim's debit / the coordinator's
record of the in-flight release exist (the phase the kill actually hit).
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODES = ["branch-1", "branch-2", "branch-3"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Phases a victim can be killed in, named by the round phase the coordinator is in when the
# victim goes missing. With a one-way delay D through the proxy and the coordinator's
# "starting job" line at S: the nodes log "accepted job" at A = S + D and send AdvertiseKeys at
# once; the key directory reaches them at A + 2D and they answer with ShareKeys at once; the
# share bundle at A + 4D (masked input sent at once; the debit is fsynced before, while the
# node computes); the unmask request at A + 6D (answered at once); the result at A + 8D.
# The coordinator waits for adverts in [S, S + 2D), shares in [S + 2D, S + 4D), masked
# inputs in [S + 4D, S + 6D), unmask responses in [S + 6D, S + 8D). A node victim is killed
# half-way through the wait that follows its last message, a coordinator in the middle of
# each of its waits; "recording" is at the coordinator's "result ready; recording the
# release" line (between the unmasked sum and its ledger record and publication).
NODE_PHASES = {
    "advertise": ("accepted", 0),  # while it sends AdvertiseKeys
    "share_keys": ("accepted", 1),  # advert sent, key directory not yet in
    "masked_input": ("accepted", 3),  # shares sent and debited, bundle not yet in
    "unmask": ("accepted", 5),  # masked input sent, unmask request not yet in
    "before_result": ("accepted", 7),  # unmask answered, result not yet in
    "published": ("released", 0),  # at its "noisy result released" line
}
COORD_PHASES = {
    "advertise": ("started", 1),
    "share_keys": ("started", 3),
    "masked_input": ("started", 5),
    "unmask": ("started", 7),
    "recording": ("recording", 0),
    "published": ("node_released", 0),
}
PATTERNS = {
    "accepted": "accepted job; computing",
    "debited": "release debited",
    "released": "noisy result released",
    "started": "starting job",
    "recording": "result ready; recording the release",
    "registered": "node registered",
}

# Longest the harness waits for job 1's analyst after the restart: a profiling job whose
# release was cut off re-runs it (the driver resends an aborted release, and a later release
# waits up to rejoin_timeout_secs = 60 for a lost node), so nine releases may take minutes.
JOB1_WAIT_SECS = 400

PROFILE_JOB = """\
name = "faults-profile"
as_of = "{as_of}"
rho = "1/5"
# Pays for re-running the release a kill cut off (the nodes had paid for its round).
retry_reserve = "2/5"
delta = 1e-6
min_cell_size = 5
amount_decimals = 2
features = ["frequency", "monetary_total"]
categorical = ["region"]
channels = []
categories = []

[bounds]
monetary_total = [0, 20000]

[levels]
region = ["north", "south", "east", "west", "central"]

[segmentations]
rfm = false
lifecycle = true

[budget]
distributions = 2
lifecycle = 1
"""


def log(msg):
    print(f"[killrun {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class LogFile:
    """Reads a process's log incrementally; remembers when the harness saw each line."""

    def __init__(self, path):
        self.path = path
        self.pos = 0
        self.lines = []  # (monotonic time seen, text without ANSI)
        self.partial = ""

    def poll(self):
        try:
            with open(self.path, "r", errors="replace") as f:
                f.seek(self.pos)
                data = f.read()
                self.pos = f.tell()
        except FileNotFoundError:
            return
        if not data:
            return
        data = self.partial + data
        parts = data.split("\n")
        self.partial = parts.pop()
        now = time.monotonic()
        for p in parts:
            self.lines.append((now, ANSI.sub("", p)))

    def matches(self, pattern, extra=None):
        return [(t, l) for t, l in self.lines if pattern in l and (extra is None or extra in l)]


class Run:
    def __init__(self, args):
        self.args = args
        self.bin = str(Path(args.bin).resolve())
        self.work = Path(args.work).resolve()
        self.rng = random.Random(args.seed)
        self.procs = {}  # name -> Popen of the current incarnation
        self.all_procs = []
        self.logs = {}  # name -> list of LogFile, one per incarnation
        self.incarnation = Counter()
        self.fed = self.work / "fed"
        self.analyst_outputs = []

    # ---------------------------------------------------------------- processes

    def spawn(self, name, argv, env_extra=None):
        self.incarnation[name] += 1
        path = self.work / f"{name}.{self.incarnation[name]}.log"
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env["NO_COLOR"] = "1"
        if env_extra:
            env.update(env_extra)
        f = open(path, "w")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, cwd=self.fed, env=env)
        f.close()
        self.procs[name] = p
        self.all_procs.append(p)
        self.logs.setdefault(name, []).append(LogFile(path))
        return p

    def start_coordinator(self):
        return self.spawn("coordinator", [self.bin, "coordinator", "--config", "coordinator.toml"])

    def start_node(self, n):
        return self.spawn(n, [self.bin, "node", "--config", f"node-{n}.toml"])

    def current_log(self, name):
        lf = self.logs[name][-1]
        lf.poll()
        return lf

    def poll_all(self):
        for name in self.logs:
            self.current_log(name)

    def wait_until(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll_all()
            r = cond()
            if r:
                return r
            time.sleep(0.002)
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}")

    def registered_since(self, since_t):
        """Nodes the current coordinator registered after monotonic time `since_t`."""
        lf = self.current_log("coordinator")
        names = set()
        for t, l in lf.matches(PATTERNS["registered"]):
            if t >= since_t:
                m = re.search(r"node=(\S+)", l)
                if m:
                    names.add(m.group(1))
        return names

    def nodes_connected(self):
        """Nodes registered with the current coordinator and not closed since, by its log."""
        lf = self.current_log("coordinator")
        names = set()
        for _, l in lf.lines:
            if PATTERNS["registered"] in l:
                m = re.search(r"node=(\S+)", l)
                if m:
                    names.add(m.group(1))
            elif "connection closed" in l or "closing connection" in l:
                m = re.search(r"peer=node (\S+)", l)
                if m:
                    names.discard(m.group(1))
        return names

    def kill9(self, name):
        p = self.procs[name]
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()

    def stop_all(self):
        """SIGTERM to every process still running; notes the exit status of each fedprof
        service (coordinator, nodes), which must be 0 after SIGTERM."""
        self.term_status = getattr(self, "term_status", {})
        running = {name: p for name, p in self.procs.items()
                   if p.poll() is None and not name.startswith("analyst") and name != "proxy"}
        for p in self.all_procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for p in self.all_procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for name, p in running.items():
            self.term_status[name] = p.returncode

    def submit(self, label):
        """Starts an analyst job submission in the background."""
        if self.args.profile:
            argv = [self.bin, "job", "submit", "--config", "analyst-a.toml", "--timeout-secs", "90",
                    "faults-profile.toml", "--out", f"out-{label}"]
        else:
            argv = [self.bin, "job", "submit", "--config", "analyst-a.toml", "--as-of", self.as_of,
                    "--rho", "1/100", "--timeout-secs", "90"]
        return self.spawn(f"analyst-{label}", argv)

    def analyst_result(self, label, timeout):
        p = self.procs[f"analyst-{label}"]
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = None
        text = ANSI.sub("", (self.work / f"analyst-{label}.1.log").read_text(errors="replace"))
        m = re.search(r"released: (\d+) contributing node", text)
        contributors = int(m.group(1)) if m else None
        if self.args.profile:
            completed = rc == 0
            contributors = None
        else:
            completed = rc == 0 and m is not None
        started_k = [int(k) for k, _ in re.findall(r"release (\d+)/(\d+)", text)]
        total_k = [int(t) for _, t in re.findall(r"release (\d+)/(\d+)", text)]
        if self.args.profile:
            received = (total_k[-1] if total_k else 0) if completed else max(started_k, default=1) - 1
        else:
            received = 1 if completed else 0
        if completed:
            outcome = "completed"
        elif "aborted" in text:
            outcome = "aborted"
        elif rc is None:
            outcome = "timeout"
        else:
            outcome = "lost"
        return {"outcome": outcome, "rc": rc, "contributors": contributors, "received": received,
                "detail": text.strip().splitlines()[-3:] if text.strip() else []}

    # ---------------------------------------------------------------- setup

    def setup(self):
        if self.work.exists() and any(self.work.iterdir()):
            raise SystemExit(f"{self.work} exists and is not empty")
        self.work.mkdir(parents=True, exist_ok=True)
        self.coord_port = free_udp_port()
        self.proxy_port = free_udp_port()
        run = lambda argv: subprocess.run(argv, check=True, capture_output=True, cwd=self.work)
        run([self.bin, "federation", "init", "--dir", "fed", "--coordinator",
             f"127.0.0.1:{self.proxy_port}", "--nodes", ",".join(NODES), "--analysts", "a",
             "--auditors", "aud"])
        run([self.bin, "gen-data", "--scenario", "bank", "--nodes", "3", "--customers",
             str(self.args.customers), "--seed", str(self.args.seed), "--out", "fed/data",
             "--no-parquet"])
        manifest = json.loads((self.fed / "data/branch-1/manifest.json").read_text())
        self.as_of = manifest["as_of"]
        c = (self.fed / "coordinator.toml").read_text()
        c = c.replace(f'listen = "127.0.0.1:{self.proxy_port}"', f'listen = "127.0.0.1:{self.coord_port}"')
        c = c.replace("idle_timeout_secs = 30", "idle_timeout_secs = 5")
        c = c.replace("contribution_timeout_secs = 120", "contribution_timeout_secs = 20")
        c = c.replace("rejoin_timeout_secs = 300", "rejoin_timeout_secs = 60")
        c = c.replace('rho_per_analyst_period = "2/1"', 'rho_per_analyst_period = "100/1"')
        assert f"127.0.0.1:{self.coord_port}" in c and "rejoin_timeout_secs = 60" in c
        (self.fed / "coordinator.toml").write_text(c)
        for n in NODES:
            p = self.fed / f"node-{n}.toml"
            t = p.read_text()
            t = t.replace("idle_timeout_secs = 30", "idle_timeout_secs = 5")
            t = t.replace("max_backoff_ms = 30000", "max_backoff_ms = 2000")
            t = t.replace("initial_backoff_ms = 500", "initial_backoff_ms = 200")
            t = t.replace('cap_rho = "2/1"', 'cap_rho = "100/1"')
            t = t.replace('max_rho_per_analyst = "2/1"', 'max_rho_per_analyst = "100/1"')
            p.write_text(t)
        (self.fed / "faults-profile.toml").write_text(PROFILE_JOB.format(as_of=self.as_of))
        proxy_argv = [sys.executable, str(HERE / "udp_impair.py"), "--listen",
                      f"127.0.0.1:{self.proxy_port}", "--upstream", f"127.0.0.1:{self.coord_port}",
                      "--delay-ms", str(self.args.delay_ms), "--loss", str(self.args.loss),
                      "--seed", str(self.args.seed), "--duration-secs", "600"]
        self.spawn("proxy", proxy_argv)

    # ---------------------------------------------------------------- the kill

    def trigger_time(self, party, event, k):
        """Monotonic time the k-th occurrence of `event` was seen, or None."""
        if event == "node_released":
            times = sorted(t for n in NODES for t, _ in self.current_log(n).matches(PATTERNS["released"]))
        elif party == "coordinator":
            times = [t for t, _ in self.current_log("coordinator").matches(PATTERNS[event])]
        else:
            times = [t for t, _ in self.current_log(party).matches(PATTERNS[event])]
        return times[k - 1] if len(times) >= k else None

    def aim_and_kill(self, party, phase, k):
        event, units = (COORD_PHASES if party == "coordinator" else NODE_PHASES)[phase]
        offset = units * self.args.delay_ms / 1000.0
        t = self.wait_until(lambda: self.trigger_time(party, event, k), 60,
                            f"{event} #{k} of {party}")
        wait = t + offset - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.kill9(party)
        late = time.monotonic() - (t + offset)
        log(f"killed {party} (pid {self.procs[party].pid}) in {phase} of release {k}, "
            f"{late * 1000:.1f} ms after the aim")
        return late

    # ---------------------------------------------------------------- analysis

    def ledger_path(self, name):
        if name == "coordinator":
            return self.fed / "ledgers/coordinator.jsonl"
        return self.fed / f"state/node-{name}/ledger.jsonl"

    def ledger_lines(self, name):
        p = self.ledger_path(name)
        return p.read_text().split("\n") if p.exists() else []

    def after_job1(self, rec):
        """Snapshots every ledger once job 1 has ended, and notes what job 1 left in them."""
        self.snapshot = {n: self.ledger_lines(n)[:-1] for n in ["coordinator"] + NODES}
        releases = [json.loads(l)["body"] for l in self.snapshot["coordinator"]
                    if '"type":"release"' in l]
        rec["job1_recorded"] = len(releases)
        rec["job1_release_nodes"] = [len(r["nodes"]) for r in releases]
        rec["job1_debits"] = {n: sum('"type":"debit"' in l for l in self.snapshot[n])
                              for n in NODES}

    def read_ledger(self, path):
        entries = []
        if not path.exists():
            return entries
        for line in path.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                entries.append({"torn": line[:80]})
        return entries

    def analyse(self, rec):
        v = {}
        ledgers = self.fed / "ledgers"
        ledgers.mkdir(exist_ok=True)
        for n in NODES:
            src = self.fed / f"state/node-{n}/ledger.jsonl"
            if src.exists():
                shutil.copy(src, ledgers / f"node-{n}.jsonl")
        audit = subprocess.run([self.bin, "audit", "verify", str(self.fed)], capture_output=True,
                               text=True, cwd=self.work)
        rec["audit"] = {"rc": audit.returncode,
                        "out": (audit.stdout + audit.stderr).strip().splitlines()[-2:]}
        if audit.returncode != 0:
            v["audit"] = rec["audit"]["out"]

        rid = lambda r: (r["job"], r["round"], r["nonce"])
        lost, double = {}, {}
        debits_by_node = {}
        for n in NODES:
            entries = self.read_ledger(ledgers / f"node-{n}.jsonl")
            debits = [e["body"]["release"] for e in entries
                      if e.get("body", {}).get("type") == "debit"]
            debits_by_node[n] = {rid(r) for r in debits}
            dup = [k for k, c in Counter(rid(r) for r in debits).items() if c > 1]
            if dup:
                double[n] = [list(d) for d in dup]
            logged = sum(1 for lf in self.logs[n] for _, l in lf.matches(PATTERNS["debited"])
                         if "retry=false" in l)
            if logged > len(debits):
                lost[n] = logged - len(debits)
            if any("torn" in e for e in entries):
                lost[n + "/torn"] = 1
        centries = self.read_ledger(ledgers / "coordinator.jsonl")
        releases = [e["body"] for e in centries if e.get("body", {}).get("type") == "release"]
        completed = sum(1 for a in rec["jobs"] if a["outcome"] == "completed")
        if not self.args.profile and completed > len(releases):
            lost["coordinator"] = completed - len(releases)
        if lost:
            v["lost_entries"] = lost
        if double:
            v["double_debit"] = double
        twice = [list(k) for k, c in Counter(rid(r["release"]) for r in releases).items() if c > 1]
        if twice:
            v["published_twice"] = twice
        jr = Counter((r["release"]["job"], r["release"]["round"]) for r in releases)
        rec["job_ids_reused"] = sum(1 for c in jr.values() if c > 1)
        by_profile = {}
        for r in releases:
            pid = (r.get("mechanism", {}).get("profile") or {}).get("id")
            by_profile.setdefault(pid, set()).add(tuple(r["nodes"]))
        mixed = {pid: [list(s) for s in sets] for pid, sets in by_profile.items() if len(sets) > 1}
        rec["releases"] = len(releases)
        rec["release_nodes"] = [len(r["nodes"]) for r in releases]
        if mixed:
            v["mixed_sets"] = mixed
        # Paid twice: a node paying for a figure of a profiling job (profile id, label) after
        # that figure was published, i.e. a resumed job paying again for what it already has.
        # Debits for the same figure BEFORE its published release are the rounds a kill cut off
        # (the nodes had paid; the release ran again, from the job's retry_reserve): counted
        # as "rerun" debits, not violations.
        published = {((r["mechanism"].get("profile") or {}).get("id"), r["mechanism"].get("label")):
                     rid(r["release"]) for r in releases}
        repaid, rerun = {}, {}
        for n in NODES:
            seen_published = set()
            for e in self.read_ledger(ledgers / f"node-{n}.jsonl"):
                body = e.get("body", {})
                if body.get("type") != "debit":
                    continue
                fig = ((body["mechanism"].get("profile") or {}).get("id"),
                       body["mechanism"].get("label"))
                if fig not in published or fig[0] is None:
                    continue
                if rid(body["release"]) == published[fig]:
                    seen_published.add(fig)
                elif fig in seen_published:
                    repaid.setdefault(n, []).append(list(fig))
                else:
                    rerun[n] = rerun.get(n, 0) + 1
        rec["rerun_debits"] = rerun
        if repaid:
            v["paid_twice"] = repaid
        # No process panicked, and every service exited 0 on SIGTERM at the end.
        panics = [f"{lf.path.name}: {l[:160]}" for lfs in self.logs.values() for lf in lfs
                  for _, l in lf.lines if "panicked" in l]
        if panics:
            v["panic"] = panics
        bad_exit = {n: rc for n, rc in self.term_status.items() if rc != 0}
        rec["sigterm_exit"] = self.term_status
        if bad_exit:
            v["sigterm_exit"] = bad_exit
        # Evidence of where the kill landed: job 1's releases are those recorded before job 2.
        victim = rec["party"]
        if victim in NODES:
            rec["victim_debits"] = len(debits_by_node[victim])
        # What was on disk after job 1 (the killed process's files included) must still be
        # there, line for line, at the end: a restart never loses or rewrites an entry.
        for name, before in self.snapshot.items():
            after = self.ledger_lines(name)
            if after[: len(before)] != before:
                lost[name + "/rewritten"] = len(before)
                v["lost_entries"] = lost
        rec["node_debits"] = {n: len(d) for n, d in debits_by_node.items()}
        return v

    # ---------------------------------------------------------------- the run

    def execute(self):
        a = self.args
        party = a.party or self.rng.choice(["coordinator"] + NODES)
        phases = COORD_PHASES if party == "coordinator" else NODE_PHASES
        phase = a.phase or self.rng.choice(sorted(phases))
        if phase not in phases:
            raise SystemExit(f"phase {phase} is not one of {sorted(phases)} for {party}")
        k = a.release or (self.rng.randint(1, 3) if a.profile else 1)
        restart_delay = round(self.rng.uniform(0.2, 3.0), 2)
        rec = {"seed": a.seed, "party": party, "phase": phase, "release": k,
               "profile": a.profile, "restart_delay_s": restart_delay, "jobs": []}
        log(f"seed {a.seed}: kill {party} in {phase} of release {k}, restart after {restart_delay} s")
        self.setup()
        self.start_coordinator()
        self.wait_until(lambda: "coordinator started" in "".join(
            l for _, l in self.current_log("coordinator").lines), 20, "coordinator start")
        t0 = time.monotonic()
        for n in NODES:
            self.start_node(n)
        self.wait_until(lambda: self.registered_since(t0) >= set(NODES), 30, "3 nodes registered")
        self.submit("job1")
        try:
            rec["kill_late_ms"] = round(self.aim_and_kill(party, phase, k) * 1000, 1)
        except TimeoutError as e:
            # The aimed event never came (job 1 ended first): kill now, so the restart below
            # still restarts a dead process.
            rec["trigger_missed"] = str(e)
            self.kill9(party)
        # The victim comes back while job 1 is still in flight, as a supervisor (systemd) would
        # restart it: job 1 must then finish (resumed, or its release re-run), not just end.
        time.sleep(restart_delay)
        t1 = time.monotonic()
        violations = {}
        if party == "coordinator":
            self.start_coordinator()
        else:
            self.start_node(party)
        try:
            self.wait_until(lambda: self.procs[party].poll() is not None
                            or self.registered_since(t1 if party == "coordinator" else 0) >= set(NODES)
                            and (party == "coordinator" or party in self.registered_since(t1)),
                            40, "nodes registered after the restart")
            if self.procs[party].poll() is not None:
                raise TimeoutError(f"{party} exited with {self.procs[party].returncode} on restart")
        except TimeoutError as e:
            violations["restart"] = str(e)
        rec["jobs"].append(self.analyst_result("job1", JOB1_WAIT_SECS))
        log(f"job 1: {rec['jobs'][-1]['outcome']}")
        self.after_job1(rec)
        if "restart" not in violations:
            # job 2 must find all three nodes registered (a node may have re-registered again
            # after job 1, e.g. a heartbeat that timed out during the restart).
            try:
                self.wait_until(lambda: self.nodes_connected() >= set(NODES), 40,
                                "all three nodes registered before job 2")
            except TimeoutError as e:
                violations["restart"] = str(e)
        if "restart" not in violations:
            self.submit("job2")
            rec["jobs"].append(self.analyst_result("job2", 150))
            j2 = rec["jobs"][-1]
            log(f"job 2: {j2['outcome']} ({j2['contributors']} contributors)")
            if j2["outcome"] != "completed" or (j2["contributors"] not in (None, 3)):
                violations["next_job"] = j2
        self.stop_all()
        for lfs in self.logs.values():
            for lf in lfs:
                lf.poll()
        violations.update(self.analyse(rec))
        rec["violations"] = violations
        return rec


def main():
    p = argparse.ArgumentParser(description="one seeded kill -9 run (see the module docs)")
    p.add_argument("--bin", default=os.environ.get("FEDPROF_BIN", "target/release/fedprof"))
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--work", required=True, help="empty directory for this run")
    p.add_argument("--party", choices=["coordinator"] + NODES)
    p.add_argument("--phase", help="one of " + ", ".join(sorted(set(NODE_PHASES) | set(COORD_PHASES))))
    p.add_argument("--release", type=int, help="which release of job 1 to kill in (default 1; "
                   "a profiling job: seeded 1..3)")
    p.add_argument("--profile", action="store_true", help="job 1 and 2 are short profiling jobs")
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--delay-ms", type=float, default=40.0)
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--keep", action="store_true", help="keep --work after a clean run")
    args = p.parse_args()
    run = Run(args)

    def on_signal(signum, _frame):
        run.stop_all()
        sys.exit(2)

    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    try:
        rec = run.execute()
    except Exception as e:  # the harness failed, not the system under test
        run.stop_all()
        print(json.dumps({"seed": args.seed, "harness_error": repr(e)}))
        return 2
    finally:
        run.stop_all()
    rec["secs"] = round(time.monotonic() - started, 1)
    print(json.dumps(rec))
    if not rec["violations"] and not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)
    return 1 if rec["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
