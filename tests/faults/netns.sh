#!/usr/bin/env bash
# The federation over a lossy, slow network: coordinator, three nodes and the analyst each in
# its own network namespace, joined by veth pairs to a router namespace whose only path between
# them is tests/faults/udp_impair.py (5% loss and 50 ms delay in each direction: 100 ms RTT).
# The router namespace does not forward IP, so every datagram crosses the proxy.
#
# Why a userspace proxy and not `tc qdisc ... netem`: this kernel has no sch_netem ("Specified
# qdisc kind is unknown"). The proxy does the same to UDP (QUIC is all UDP).
#
# Then: a totals job and a short profiling job (9 releases) must complete with all three nodes,
# and `fedprof audit verify` must pass. Needs root (ip netns). Bounded: the whole test is
# killed after $FAULTS_NETNS_TIMEOUT seconds (default 300); on exit every process it started is
# killed by pid and every namespace it made is deleted.
#
# Usage: tests/faults/netns.sh   (env: FEDPROF_BIN, default target/release/fedprof)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(readlink -f "${FEDPROF_BIN:-${CARGO_TARGET_DIR:-target}/release/fedprof}")
[ -x "$bin" ] || { echo "error: $bin not found; run cargo build --release first" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "netns: skipped (needs root for ip netns)"; exit 0; }
limit=${FAULTS_NETNS_TIMEOUT:-300}
loss=${FAULTS_LOSS:-0.05}
delay=${FAULTS_DELAY_MS:-50}

tag="fp$$"
router="$tag-r"
parties=(c n1 n2 n3 a)
work=$(mktemp -d /tmp/fedprof-netns.XXXXXX)
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for p in "${parties[@]}"; do ip netns del "$tag-$p" 2>/dev/null || true; done
  ip netns del "$router" 2>/dev/null || true
  if [ "$rc" = 0 ]; then rm -rf "$work"; else echo "netns: FAILED; logs kept in $work" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
# The watchdog: past the limit, the whole test fails (and cleans up through the trap).
( sleep "$limit"; echo "netns: timed out after $limit s" >&2; kill -TERM $$ ) &
watchdog=$!
pids+=("$watchdog")
started=$(date +%s)

ip netns add "$router"
ip -n "$router" link set lo up
i=0
for p in "${parties[@]}"; do
  ns="$tag-$p"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "$tag-$p-r" type veth peer name "$tag-$p-x"
  ip link set "$tag-$p-r" netns "$router"
  ip link set "$tag-$p-x" netns "$ns"
  ip -n "$router" addr add "10.213.$i.1/24" dev "$tag-$p-r"
  ip -n "$router" link set "$tag-$p-r" up
  ip -n "$ns" addr add "10.213.$i.2/24" dev "$tag-$p-x"
  ip -n "$ns" link set "$tag-$p-x" up
  i=$((i + 1))
done
[ "$(ip netns exec "$router" cat /proc/sys/net/ipv4/ip_forward)" = 0 ] \
  || { echo "netns: the router namespace forwards IP; the proxy would not be the only path" >&2; exit 1; }
coord_ip=10.213.0.2
port=7300

cd "$work"
"$bin" federation init --dir fed --coordinator "$coord_ip:$port" --nodes branch-1,branch-2,branch-3 \
  --analysts a --auditors aud > /dev/null
"$bin" gen-data --scenario bank --nodes 3 --customers 3000 --out fed/data --no-parquet > /dev/null 2>&1
as_of=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["as_of"])' fed/data/branch-1/manifest.json)
# Each party dials the router's address on its own link (the proxy); the certificate still
# names the coordinator's address, so server_name says which name to expect.
set_dial() { # file, router ip
  sed -i "s|^coordinator = \".*\"|coordinator = \"$2:$port\"\nserver_name = \"$coord_ip\"|" "$1"
}
for n in 1 2 3; do set_dial "fed/node-branch-$n.toml" "10.213.$n.1"; done
set_dial fed/analyst-a.toml 10.213.4.1
python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import killrun; print(killrun.PROFILE_JOB.format(as_of=sys.argv[2]))' \
  "$here" "$as_of" > fed/faults-profile.toml

export NO_COLOR=1 RUST_LOG=info
ip netns exec "$router" python3 "$here/udp_impair.py" --listen "0.0.0.0:$port" --upstream "$coord_ip:$port" \
  --delay-ms "$delay" --loss "$loss" --seed 13 --duration-secs "$limit" --stats proxy.json \
  > proxy.log 2>&1 &
pids+=($!)
proxy=$!
# ip netns exec execs its command, so $! is the fedprof process itself.
(cd fed && exec ip netns exec "$tag-c" "$bin" coordinator --config coordinator.toml) > coordinator.log 2>&1 &
pids+=($!)
for n in 1 2 3; do
  (cd fed && exec ip netns exec "$tag-n$n" "$bin" node --config "node-branch-$n.toml") > "node-$n.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 1 300); do
  [ "$(grep -c 'node registered' coordinator.log || true)" -ge 3 ] && break
  sleep 0.1
done
[ "$(grep -c 'node registered' coordinator.log || true)" -ge 3 ] \
  || { echo "netns: the nodes did not register through the proxy" >&2; exit 1; }
echo "netns: 3 nodes registered through the lossy proxy after $(( $(date +%s) - started )) s"

t=$(date +%s)
(cd fed && ip netns exec "$tag-a" "$bin" job submit --config analyst-a.toml --as-of "$as_of" \
  --rho 1/100 --timeout-secs 120) > totals.out 2>&1 \
  || { cat totals.out >&2; echo "netns: the totals job failed" >&2; exit 1; }
grep -q "released: 3 contributing node(s)" totals.out \
  || { cat totals.out >&2; echo "netns: the totals job did not have all three nodes" >&2; exit 1; }
echo "netns: totals job completed with 3 nodes in $(( $(date +%s) - t )) s"

t=$(date +%s)
(cd fed && ip netns exec "$tag-a" "$bin" job submit --config analyst-a.toml --timeout-secs 120 \
  faults-profile.toml --out profile) > profile.out 2>&1 \
  || { cat profile.out >&2; echo "netns: the profiling job failed" >&2; exit 1; }
[ -s fed/profile/report.json ] || { echo "netns: no report.json" >&2; exit 1; }
echo "netns: profiling job completed in $(( $(date +%s) - t )) s"

for pid in "${pids[@]:2}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${pids[@]:2}"; do wait "$pid" 2>/dev/null || true; done
kill -TERM "$proxy"; wait "$proxy" 2>/dev/null || true
mkdir -p fed/ledgers
for n in 1 2 3; do cp "fed/state/node-branch-$n/ledger.jsonl" "fed/ledgers/node-branch-$n.jsonl"; done
"$bin" audit verify fed > audit.out 2>&1 || { cat audit.out >&2; echo "netns: audit failed" >&2; exit 1; }
releases=$(grep -c '"type":"release"' fed/ledgers/coordinator.jsonl)
three=$(grep -c '"nodes":\["branch-1","branch-2","branch-3"\]' fed/ledgers/coordinator.jsonl)
[ "$releases" = "$three" ] || { echo "netns: $releases releases, only $three with all three nodes" >&2; exit 1; }
echo "netns: audit verified; $releases releases, each with all three nodes; proxy $(cat proxy.json)"
echo "netns: passed in $(( $(date +%s) - started )) s (loss $loss, one-way delay $delay ms)"
kill "$watchdog" 2>/dev/null || true
