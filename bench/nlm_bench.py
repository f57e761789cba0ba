#!/usr/bin/env python3
"""NLM LOCK+UNLOCK pairs: lockwarden (gateway + durable RocksDB server)
side by side with NFS-Ganesha 4.3's NLM4, same client program, same sandbox.

Each system runs on its own host (network namespace) and is driven from a
client host by C concurrent tests/peers/nlm_client processes (libnfs NLM4),
each on its own connection, each doing LOCK then UNLOCK of its own byte
(distinct owners and ranges: no conflicts). Runs are interleaved A/B/A/B.
Reported per (system, transport, clients): pairs/s (all clients' calls / 2 /
wall time of the slowest), LOCK p50 and p99 (median of the clients' p50s,
max of their p99s: an approximation, said here so nobody reads more into it),
and the ratio lockwarden/Ganesha of the medians over the runs.

As peer-sandbox.md advises, one extra lock is held by the client host for the
whole run so Ganesha keeps the client monitored (otherwise statd's fsync of
its monitor file dominates Ganesha's figures).

Usage (root; prints figures, asserts nothing):
  bazel build -c opt //server:lockwarden-server //gateway:lockwarden-gateway \
      //tests/peers:nlm_client
  python3 bench/nlm_bench.py [--runs 5] [--seconds 3] [--clients 1,16,64]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.harness import netns  # noqa: E402
from tests.harness import peers  # noqa: E402

NLM_PORT = 32803


def start_lockwarden(host):
    data = os.path.join(host.dir, 'lw-data')
    host.start([peers.runfile('server/lockwarden-server'),
                '--listen=127.0.0.1:7420', '--data-dir=' + data,
                '--log-level=warn'],
               name='lockwarden-server', tcp_ports=[7420],
               ready_regex=r'listening on port', timeout=30)
    host.start([peers.runfile('gateway/lockwarden-gateway'), '--name=' + host.name,
                '--server=127.0.0.1:7420', '--nlm-port=%d' % NLM_PORT,
                '--nsm-port=662', '--portmap-port=111', '--log-level=warn'],
               name='lockwarden-gateway', tcp_ports=[NLM_PORT], udp_ports=[NLM_PORT],
               ready_regex=r'lockwarden-gateway ready', timeout=30)
    return 'aa' * 32


def start_ganesha(host, client):
    host.start_rpcbind()
    host.start_statd()
    peers.start_ganesha(host)
    _, res = peers.nlm_client(client, ['--server', host.name, '--mount-export',
                                       '/export', '--file', 'bench', '--create'],
                              timeout=30)
    return res.stdout.split('fh=', 1)[1].split()[0]


def run_load(client, server, fh, clients, seconds, udp, base_svid):
    """C concurrent nlm_client processes for about `seconds`; returns
    (pairs_per_s, p50_us, p99_us)."""
    # Calibrate the repeat count: ~4000 pairs/s per client is a safe upper
    # bound here, and each process stops when its repeats are done.
    repeat = max(50, int(seconds * 4000 / max(1, clients) ** 0.5))
    procs = []
    start = time.monotonic()
    for i in range(clients):
        svid = base_svid + i
        argv = client.wrap([peers.runfile('tests/peers/nlm_client'),
                            '--server', server, '--port', str(NLM_PORT),
                            '--caller', client.name, '--fh', fh, '--repeat',
                            str(repeat), '--summary', '--timeout-ms', '20000']
                           + (['--udp'] if udp else []) +
                           ['lock:svid=%d,excl=1,offset=%d,len=1' % (svid, svid),
                            'unlock:svid=%d,offset=%d,len=1' % (svid, svid)])
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=300)[0] for p in procs]
    wall = time.monotonic() - start
    calls, p50s, p99s = 0, [], []
    for out in outs:
        m = re.search(r'summary total calls=(\d+)', out)
        if not m:
            raise RuntimeError('nlm_client failed: ' + out[-500:])
        calls += int(m.group(1))
        lm = re.search(r'summary op=lock .*p50_us=(\d+) .*p99_us=(\d+)', out)
        p50s.append(int(lm.group(1)))
        p99s.append(int(lm.group(2)))
    return calls / 2 / wall, statistics.median(p50s), max(p99s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--seconds', type=float, default=2.0)
    ap.add_argument('--clients', default='1,16,64')
    args = ap.parse_args()
    counts = [int(c) for c in args.clients.split(',')]
    netns.cleanup_stale()
    with netns.Topology(['client', 'lw', 'ganesha']) as topo:
        client, lw, gan = topo['client'], topo['lw'], topo['ganesha']
        client.start_rpcbind()
        client.start_statd()
        lw_fh = start_lockwarden(lw)
        gan_fh = start_ganesha(gan, client)
        # Keep the client monitored on both (peer-sandbox.md).
        for host, fh in (('lw', lw_fh), ('ganesha', gan_fh)):
            peers.nlm_client(client, ['--server', host, '--port', str(NLM_PORT),
                                      '--caller', 'client', '--fh', fh,
                                      'lock:svid=999999,excl=1,offset=999999,len=1'])
        results = {}
        for udp in (False, True):
            for c in counts:
                for run in range(args.runs):
                    for name, host, fh in (('lockwarden', 'lw', lw_fh),
                                           ('ganesha', 'ganesha', gan_fh)):
                        base = 1000 + run * 1000
                        r = run_load(client, host, fh, c, args.seconds, udp, base)
                        results.setdefault((name, udp, c), []).append(r)
        print('| transport | clients | system | pairs/s (median of %d) | LOCK p50 µs | LOCK p99 µs |' % args.runs)
        print('|---|---:|---|---:|---:|---:|')
        for udp in (False, True):
            for c in counts:
                med = {}
                for name in ('lockwarden', 'ganesha'):
                    rs = results[(name, udp, c)]
                    pairs = statistics.median(r[0] for r in rs)
                    med[name] = pairs
                    print('| %s | %d | %s | %.0f | %.0f | %.0f |' % (
                        'udp' if udp else 'tcp', c, name, pairs,
                        statistics.median(r[1] for r in rs),
                        statistics.median(r[2] for r in rs)))
                print('| %s | %d | ratio lockwarden/ganesha | %.2f | | |' % (
                    'udp' if udp else 'tcp', c, med['lockwarden'] / med['ganesha']))


if __name__ == '__main__':
    main()
