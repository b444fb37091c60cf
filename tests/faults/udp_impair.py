#!/usr/bin/env python3
"""A userspace UDP impairment proxy: loss and delay for QUIC traffic.

Why this exists: the kernel of our CI machines has no `sch_netem`, so `tc qdisc ... netem`
fails with "Specified qdisc kind is unknown". This proxy does in userspace what the issue asks
netem to do: it listens on one UDP address, forwards every datagram to one upstream address
(the coordinator), and delays each datagram by a fixed time per direction and drops a seeded
fraction of them, in both directions. Every client address (a node, an analyst) gets its own
upstream socket, so the coordinator sees one peer per client, as without the proxy.

QUIC is end to end (TLS 1.3 inside), so the proxy sees only encrypted datagrams; it changes
nothing but their timing and their delivery, which is exactly what a lossy WAN does.

The kill -9 harness (tests/faults/killrun.py) also puts it on loopback, without loss, so that
each protocol phase lasts at least one round trip and a kill can land inside a chosen phase.

Usage:
  udp_impair.py --listen 127.0.0.1:7400 --upstream 127.0.0.1:7300 \
      --delay-ms 50 --loss 0.05 --seed 1 [--duration-secs 600] [--stats FILE]

Stdlib only; bounded in time (--duration-secs); exits on SIGTERM/SIGINT and writes its counters
(datagrams forwarded and dropped per direction) to --stats as JSON on exit.
"""

import argparse
import asyncio
import json
import random
import signal
import socket
import sys


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class Stats:
    def __init__(self):
        self.c = {"up_fwd": 0, "up_drop": 0, "down_fwd": 0, "down_drop": 0, "clients": 0}


class Upstream(asyncio.DatagramProtocol):
    """The socket towards the upstream for one client: replies go back to that client."""

    def __init__(self, proxy, client):
        self.proxy = proxy
        self.client = client
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.proxy.impair(data, "down", lambda d: self.proxy.listener.sendto(d, self.client))

    def error_received(self, exc):  # ICMP unreachable while the upstream is down: ignore
        pass


class Proxy(asyncio.DatagramProtocol):
    def __init__(self, args, loop):
        self.args = args
        self.loop = loop
        self.rng = random.Random(args.seed)
        self.stats = Stats()
        self.listener = None
        self.clients = {}
        self.pending = {}

    def connection_made(self, transport):
        self.listener = transport

    def impair(self, data, direction, send):
        if self.rng.random() < self.args.loss:
            self.stats.c[direction + "_drop"] += 1
            return
        self.stats.c[direction + "_fwd"] += 1
        delay = self.args.delay_ms / 1000.0
        if self.args.jitter_ms:
            delay += self.rng.uniform(0, self.args.jitter_ms / 1000.0)
        if delay <= 0:
            send(data)
        else:
            self.loop.call_later(delay, send, data)

    def datagram_received(self, data, addr):
        up = self.clients.get(addr)
        if up is None:
            if addr in self.pending:
                self.pending[addr].append(data)
                return
            self.pending[addr] = [data]
            self.loop.create_task(self.open_upstream(addr))
            return
        self.impair(data, "up", lambda d: up.transport.sendto(d))

    async def open_upstream(self, addr):
        family = socket.AF_INET6 if ":" in self.args.upstream[0] else socket.AF_INET
        _, proto = await self.loop.create_datagram_endpoint(
            lambda: Upstream(self, addr), remote_addr=self.args.upstream, family=family
        )
        self.clients[addr] = proto
        self.stats.c["clients"] += 1
        for data in self.pending.pop(addr, []):
            self.impair(data, "up", lambda d: proto.transport.sendto(d))

    def error_received(self, exc):
        pass


async def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", required=True, type=parse_addr)
    p.add_argument("--upstream", required=True, type=parse_addr)
    p.add_argument("--delay-ms", type=float, default=50.0, help="one-way delay per direction")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="extra uniform delay (reorders)")
    p.add_argument("--loss", type=float, default=0.05, help="drop probability per datagram")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--duration-secs", type=float, default=600.0)
    p.add_argument("--stats", default=None, help="write counters as JSON here on exit")
    args = p.parse_args()
    loop = asyncio.get_running_loop()
    proxy = Proxy(args, loop)
    family = socket.AF_INET6 if ":" in args.listen[0] else socket.AF_INET
    await loop.create_datagram_endpoint(lambda: proxy, local_addr=args.listen, family=family)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"udp_impair: {args.listen} -> {args.upstream} delay {args.delay_ms} ms "
          f"loss {args.loss}", file=sys.stderr, flush=True)
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.duration_secs)
    except asyncio.TimeoutError:
        pass
    if args.stats:
        with open(args.stats, "w") as f:
            json.dump(proxy.stats.c, f)
    print(f"udp_impair: {json.dumps(proxy.stats.c)}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
