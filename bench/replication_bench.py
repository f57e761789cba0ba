#!/usr/bin/env python3
"""Replicated lockwarden (issue #6): failover time through a gateway, and
LOCK+UNLOCK throughput through a gateway on etcd beside RocksDB.

Topology (network namespaces, tests/harness/netns): a 3-member etcd cluster
on hosts e1, e2, e3 (one member each); host `lw` runs three
lockwarden-server instances with --store=etcd (ports 7421-7423) and one
lockwarden-gateway (--server= all three); host `rdb` runs the single-node
RocksDB server + gateway exactly as bench/nlm_bench.py does; host `client`
runs the load (tests/peers/nlm_client, libnfs NLM4, via nlm_bench.run_load).

Failover: a prober on host `lw` sends NLM4 LOCK then UNLOCK over UDP to the
gateway in a loop (its own small XDR encoder below; every call a fresh xid,
resent every 50 ms, so the gateway's duplicate cache never answers), and
prints the CLOCK_MONOTONIC time of every GRANTED LOCK. Each round: hold one
more lock through lockwardenctl (acknowledged), wait until the leader has
served for --leader-age seconds, kill -9 the leader, take the first GRANTED
LOCK completed after the kill: failover time = that - kill time (only LOCKs first sent after the kill
count: one in flight at the kill may have been committed before it). Then check
every acknowledged lock is still held (lockwardenctl locks list) and restart
the killed server as a standby. Reported: p50 / max over the rounds and the
number of acknowledged locks lost.

Throughput: nlm_bench.run_load at 1/16/64 TCP clients against the etcd
gateway and the RocksDB gateway, interleaved, --runs times each.

Usage (root; prints figures, asserts nothing):
  bazel build -c opt //server:lockwarden-server //gateway:lockwarden-gateway \\
      //tests/peers:nlm_client //cli:lockwardenctl
  python3 bench/replication_bench.py [--rounds 20] [--runs 3] [--seconds 2]
      [--clients 1,16,64] [--skip-throughput] [--skip-failover]
"""

import argparse
import json
import os
import random
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NLM_PORT = 32803
NLM_PROGRAM, NLM_V4 = 100021, 4
NLM4_LOCK, NLM4_UNLOCK = 2, 4
NLM4_GRANTED = 0
SERVER_PORTS = (7421, 7422, 7423)
PROBE_RESEND_S = 0.05


# ---- NLM4 over UDP, just LOCK and UNLOCK (RFC 1813 / XNFS) ----

def _opaque(b):
    pad = (4 - len(b) % 4) % 4
    return struct.pack('>I', len(b)) + b + b'\0' * pad


def _alock(caller, fh, svid, offset, length):
    return (_opaque(caller) + _opaque(fh) + _opaque(b'probe-oh') +
            struct.pack('>iQQ', svid, offset, length))


def _call(xid, proc, args):
    # xid, CALL, rpcvers 2, prog, vers, proc, AUTH_NONE cred + verifier.
    return struct.pack('>IIIIIIIIII', xid, 0, 2, NLM_PROGRAM, NLM_V4, proc,
                       0, 0, 0, 0) + args


def _reply_status(data, xid):
    """The nlm4_stat of an accepted reply to `xid`, or None."""
    if len(data) < 24:
        return None
    rxid, mtype, reply_stat = struct.unpack('>III', data[:12])
    if rxid != xid or mtype != 1 or reply_stat != 0:
        return None
    verf_len = struct.unpack('>I', data[16:20])[0]
    off = 20 + verf_len + (4 - verf_len % 4) % 4
    if struct.unpack('>I', data[off:off + 4])[0] != 0:  # accept_stat SUCCESS
        return None
    off += 4
    cookie_len = struct.unpack('>I', data[off:off + 4])[0]
    off += 4 + cookie_len + (4 - cookie_len % 4) % 4
    return struct.unpack('>I', data[off:off + 4])[0]


def _rpc(sock, addr, proc, args, deadline):
    """Sends until an answer arrives (fresh xid per resend); returns the
    nlm4_stat or None at the deadline."""
    while time.monotonic() < deadline:
        xid = random.getrandbits(32)
        sock.sendto(_call(xid, proc, args), addr)
        until = min(deadline, time.monotonic() + PROBE_RESEND_S)
        while time.monotonic() < until:
            r, _, _ = select.select([sock], [], [], max(0, until - time.monotonic()))
            if not r:
                break
            status = _reply_status(sock.recv(65536), xid)
            if status is not None:
                return status
    return None


def probe_main(args):
    """Runs on host `lw`: LOCK+UNLOCK forever; prints 'granted <sent> <t>'
    for every GRANTED LOCK (first send and reply times)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addr = ('127.0.0.1', NLM_PORT)
    fh = bytes.fromhex(args.fh)
    end = time.monotonic() + args.probe_seconds
    i = 0
    while time.monotonic() < end:
        i += 1
        lock = (_opaque(b'c%d' % i) + struct.pack('>II', 0, 1) +
                _alock(b'prober', fh, 424242, 1 << 40, 1) + struct.pack('>II', 0, 0))
        sent = time.monotonic()
        status = _rpc(sock, addr, NLM4_LOCK, lock, sent + 5)
        if status == NLM4_GRANTED:
            print('granted %.6f %.6f' % (sent, time.monotonic()), flush=True)
            unlock = _opaque(b'u%d' % i) + _alock(b'prober', fh, 424242, 1 << 40, 1)
            _rpc(sock, addr, NLM4_UNLOCK, unlock, time.monotonic() + 5)
        else:
            time.sleep(0.01)  # DENIED_NOLOCKS while no leader: retry soon.


# ---- the benchmark ----

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rounds', type=int, default=20)
    ap.add_argument('--leader-age', type=float, default=1.0,
                    help='seconds a new leader serves before it is killed')
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--seconds', type=float, default=2.0)
    ap.add_argument('--clients', default='1,16,64')
    ap.add_argument('--skip-throughput', action='store_true')
    ap.add_argument('--skip-failover', action='store_true')
    ap.add_argument('--probe', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--fh', default='aa' * 32, help=argparse.SUPPRESS)
    ap.add_argument('--probe-seconds', type=float, default=600, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        return probe_main(args)

    from bench import nlm_bench  # noqa: E402 (its binaries and load driver)
    from tests.harness import netns, peers  # noqa: E402
    binary = nlm_bench.binary
    print('binaries from %s' % nlm_bench.BIN_DIR)
    netns.cleanup_stale()
    with netns.Topology(['client', 'lw', 'rdb', 'e1', 'e2', 'e3']) as topo:
        lw, client = topo['lw'], topo['client']
        etcd_hosts = [topo['e1'], topo['e2'], topo['e3']]
        peers.start_etcd_cluster(etcd_hosts)
        endpoints = peers.etcd_endpoints(etcd_hosts)
        servers = {}

        def start_server(i):
            port = SERVER_PORTS[i]
            servers[i] = lw.start(
                [binary('server/lockwarden-server'), '--store=etcd',
                 '--etcd-endpoints=' + endpoints, '--server-id=s%d' % i,
                 '--listen=127.0.0.1:%d' % port, '--log-level=warn'],
                name='server-s%d' % i, tcp_ports=[port], timeout=30)

        for i in range(3):
            start_server(i)
        server_list = ','.join('127.0.0.1:%d' % p for p in SERVER_PORTS)
        lw.start([binary('gateway/lockwarden-gateway'), '--name=lw',
                  '--server=' + server_list, '--nlm-port=%d' % NLM_PORT,
                  '--nsm-port=662', '--portmap-port=111', '--log-level=warn'],
                 name='lockwarden-gateway', tcp_ports=[NLM_PORT],
                 udp_ports=[NLM_PORT], ready_regex=r'lockwarden-gateway ready',
                 timeout=30)
        ctl = [binary('cli/lockwardenctl'), '--server=' + server_list, '--timeout=5s']

        def ctl_json(*a):
            # Right after a failover a standby may still redirect to the
            # dead leader for a moment (its cached address): retry.
            for _ in range(50):
                res = lw.run(ctl + list(a) + ['--output', 'json'], timeout=30,
                             check=False)
                if res.returncode == 0:
                    return json.loads(res.stdout)
                time.sleep(0.1)
            raise SystemExit('lockwardenctl %s: %s' % (a, res.stderr))

        def leader():
            addr = ctl_json('status').get('leader_address', '')
            for i, p in enumerate(SERVER_PORTS):
                if addr.endswith(':%d' % p):
                    return i
            return None

        if not args.skip_failover:
            failover(args, lw, servers, start_server, ctl_json, leader)
        if not args.skip_throughput:
            throughput(args, nlm_bench, client, topo['rdb'])


def failover(args, lw, servers, start_server, ctl_json, leader):
    probe = subprocess.Popen(lw.wrap([sys.executable, os.path.abspath(__file__),
                                      '--probe']),
                             stdout=subprocess.PIPE, text=True)
    grants = []

    def read_grants(until):
        while time.monotonic() < until:
            r, _, _ = select.select([probe.stdout], [], [], max(0, until - time.monotonic()))
            if not r:
                return
            line = probe.stdout.readline()
            if line.startswith('granted '):
                grants.append(tuple(float(x) for x in line.split()[1:3]))

    try:
        read_grants(time.monotonic() + 2)
        if not grants:
            raise SystemExit('prober gets no GRANTED through the gateway')
        acked, lost, times = {}, 0, []
        elected = time.monotonic()
        for rnd in range(args.rounds):
            res = ctl_json('lock', '--fh=%02x' % (rnd + 1), '--client=bench-%d' % rnd,
                           '--svid=1', '--length=10')
            assert res['status'] == 'LOCK_STATUS_GRANTED', res
            acked[('%02x' % (rnd + 1), 'bench-%d' % rnd)] = str(res['fencing_token'])
            victim = leader()
            read_grants(elected + args.leader_age)
            killed = time.monotonic()
            os.kill(servers[victim].pid, signal.SIGKILL)
            servers[victim].wait(10) if hasattr(servers[victim], 'wait') else None
            first = None
            deadline = killed + 30
            while first is None and time.monotonic() < deadline:
                read_grants(time.monotonic() + 0.05)
                # A LOCK sent after the kill (one in flight at the kill
                # may have been committed just before it).
                after = [done for sent, done in grants if sent > killed]
                first = after[0] if after else None
            elected = time.monotonic()
            if first is None:
                print('round %d: no LOCK granted within 30 s of the kill' % rnd)
                times.append(float('inf'))
            else:
                times.append(first - killed)
            held = {(l['file_handle'], l['owner']['client_name']): str(l['fencing_token'])
                    for l in ctl_json('locks', 'list').get('locks', [])}
            lost_now = [k for k, t in acked.items() if held.get(k) != t]
            lost += len(lost_now)
            print('round %2d: killed s%d, first LOCK granted through the gateway after '
                  '%.0f ms; %d acknowledged locks held, %d lost' % (
                      rnd, victim, times[-1] * 1000, len(acked) - len(lost_now),
                      len(lost_now)), flush=True)
            start_server(victim)
        times.sort()
        print('\nfailover (kill -9 of the leader -> first LOCK GRANTED through the gateway) '
              'over %d rounds: p50 %.0f ms, max %.0f ms, acknowledged locks lost: %d' % (
                  len(times), times[len(times) // 2] * 1000, times[-1] * 1000, lost))
    finally:
        probe.kill()
        probe.wait()


def throughput(args, nlm_bench, client, rdb):
    rdb_fh, _ = nlm_bench.start_lockwarden(rdb)
    targets = (('etcd (3 servers, 3-member etcd)', 'lw', 'aa' * 32),
               ('rocksdb (single node)', 'rdb', rdb_fh))
    counts = [int(c) for c in args.clients.split(',')]
    results = {}
    for c in counts:
        for run in range(args.runs):
            for name, host, fh in targets:
                r = nlm_bench.run_load(client, host, fh, c, args.seconds, False,
                                       1000 + run * 1000)
                results.setdefault((name, c), []).append(r)
    print('\n| clients | store | pairs/s (median of %d) | LOCK p50 µs | LOCK p99 µs |'
          % args.runs)
    print('|---:|---|---:|---:|---:|')
    for c in counts:
        for name, _, _ in targets:
            rs = results[(name, c)]
            print('| %d | %s | %.0f | %.0f | %.0f |' % (
                c, name, statistics.median(r[0] for r in rs),
                statistics.median(r[1] for r in rs), statistics.median(r[2] for r in rs)))


if __name__ == '__main__':
    main()
