#!/usr/bin/env python3
"""Replicated lockwarden (issue #6): failover time through a gateway, and
LOCK+UNLOCK throughput through a gateway on etcd beside RocksDB and Ganesha.

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
gateway, the RocksDB gateway and NFS-Ganesha's in-memory NLM4 (host
`ganesha`, started as bench/nlm_bench.py does), interleaved, --runs times
each (--stores picks the systems). Each run also reports the whole
machine's CPU per pair (/proc/stat: the system under test, the clients and
anything else running), which bounds pairs/s at 2 vCPUs / that figure.

Usage (root; prints figures, asserts nothing):
  bazel build -c opt //server:lockwarden-server //gateway:lockwarden-gateway \\
      //tests/peers:nlm_client //cli:lockwardenctl
  python3 bench/replication_bench.py [--rounds 20] [--runs 3] [--seconds 2]
      [--clients 1,16,64] [--skip-throughput] [--skip-failover] [--profile]
      [--stores etcd,rocksdb,ganesha] [--bin-dir DIR] [--etcd-flags=...]
      [--server-flags=...]

The etcd members run with deploy/k8s's flags (ETCD_PRODUCTION_FLAGS) unless
--etcd-flags says otherwise; e.g. --etcd-flags="--max-txn-ops=1024 ..."
together with a server built for that limit (EtcdStoreOptions::max_txn_ops).

--profile prints, per etcd run, where the time went: CPU seconds per pair of
the etcd members, the leader server, the standbys and the gateway
(utime+stime from /proc), the machine's busy time, the leader's commit
pipeline (Txns/s, queue entries and mutations per Txn, commit p50:
lockwardenctl status against the leader) and etcd's own counters summed
over the members (/metrics: WAL fsyncs and their mean latency, backend
commits, raft proposals applied, Txn and Range RPCs served).
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
# The etcd members' flags in deploy/k8s/base/etcd/etcd.yaml beyond names and
# URLs: compaction keeps one hour of history, 4 GiB backend quota. fsync
# stays on (etcd has no switch for it in 3.4 short of --unsafe-no-fsync).
ETCD_PRODUCTION_FLAGS = ('--auto-compaction-mode=periodic '
                         '--auto-compaction-retention=1h '
                         '--quota-backend-bytes=4294967296')


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
    ap.add_argument('--stores', default='etcd,rocksdb,ganesha',
                    help='throughput targets, comma-separated')
    ap.add_argument('--bin-dir', default=None,
                    help='binaries (server/, gateway/, cli/, tests/peers/) from '
                         'here instead of bazel-out/k8-opt/bin')
    ap.add_argument('--etcd-flags', default=ETCD_PRODUCTION_FLAGS,
                    help='extra flags for every etcd member, space-separated '
                         '(default: those of deploy/k8s/base/etcd/etcd.yaml)')
    ap.add_argument('--server-flags', default='',
                    help='extra flags for every etcd-backed lockwarden-server')
    ap.add_argument('--profile', action='store_true',
                    help='print where each etcd run spent its time')
    ap.add_argument('--probe', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--fh', default='aa' * 32, help=argparse.SUPPRESS)
    ap.add_argument('--probe-seconds', type=float, default=600, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        return probe_main(args)

    from bench import nlm_bench  # noqa: E402 (its binaries and load driver)
    if args.bin_dir:
        nlm_bench.BIN_DIR = os.path.abspath(args.bin_dir)
    from tests.harness import netns, peers  # noqa: E402
    binary = nlm_bench.binary
    print('binaries from %s' % nlm_bench.BIN_DIR)
    netns.cleanup_stale()
    with netns.Topology(['client', 'lw', 'rdb', 'ganesha', 'e1', 'e2', 'e3']) as topo:
        lw, client = topo['lw'], topo['client']
        etcd_hosts = [topo['e1'], topo['e2'], topo['e3']]
        etcd_procs = peers.start_etcd_cluster(etcd_hosts,
                                              extra_args=args.etcd_flags.split())
        endpoints = peers.etcd_endpoints(etcd_hosts)
        servers = {}

        def start_server(i):
            port = SERVER_PORTS[i]
            servers[i] = lw.start(
                [binary('server/lockwarden-server'), '--store=etcd',
                 '--etcd-endpoints=' + endpoints, '--server-id=s%d' % i,
                 '--listen=127.0.0.1:%d' % port, '--log-level=warn'] +
                args.server_flags.split(),
                name='server-s%d' % i, tcp_ports=[port], timeout=30)

        for i in range(3):
            start_server(i)
        server_list = ','.join('127.0.0.1:%d' % p for p in SERVER_PORTS)
        gateway = lw.start([binary('gateway/lockwarden-gateway'), '--name=lw',
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
            profile = None
            if args.profile:
                profile = EtcdProfile(nlm_bench, lw, etcd_hosts, etcd_procs,
                                      servers, gateway, leader)
            throughput(args, nlm_bench, client, topo['rdb'], topo['ganesha'],
                       profile)


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


# etcd's Prometheus counters summed over the members, by short name:
# (metric name, label fragment that must appear or None).
ETCD_COUNTERS = {
    'wal_fsyncs': ('etcd_disk_wal_fsync_duration_seconds_count', None),
    'wal_fsync_s': ('etcd_disk_wal_fsync_duration_seconds_sum', None),
    'backend_commits': ('etcd_disk_backend_commit_duration_seconds_count', None),
    'backend_commit_s': ('etcd_disk_backend_commit_duration_seconds_sum', None),
    'proposals_applied': ('etcd_server_proposals_applied_total', None),
    'txn_rpcs': ('grpc_server_handled_total', 'grpc_method="Txn"'),
    'range_rpcs': ('grpc_server_handled_total', 'grpc_method="Range"'),
}


def machine_busy_seconds():
    """CPU seconds all CPUs spent not idle (nor waiting for I/O) since
    boot, from /proc/stat."""
    with open('/proc/stat') as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf('SC_CLK_TCK')


class EtcdProfile:
    """Snapshots of CPU times and counters around one run against the etcd
    gateway; report() prints the differences per pair."""

    def __init__(self, nlm_bench, lw, etcd_hosts, etcd_procs, servers,
                 gateway, leader):
        self.nlm_bench, self.lw = nlm_bench, lw
        self.etcd_hosts, self.etcd_procs = etcd_hosts, etcd_procs
        self.servers, self.gateway = servers, gateway
        self.leader = leader

    def _etcd_counters(self):
        out = dict.fromkeys(ETCD_COUNTERS, 0.0)
        for h in self.etcd_hosts:
            res = self.lw.run(['curl', '-s', '--max-time', '5',
                               'http://%s:2379/metrics' % h.ipv4],
                              timeout=10, check=False)
            for line in res.stdout.splitlines():
                if line.startswith('#') or ' ' not in line:
                    continue
                name_labels, value = line.rsplit(' ', 1)
                name = name_labels.split('{', 1)[0]
                for key, (metric, fragment) in ETCD_COUNTERS.items():
                    if name == metric and (fragment is None or
                                           fragment in name_labels):
                        out[key] += float(value)
        return out

    def snapshot(self):
        cpu = self.nlm_bench.cpu_seconds
        lead = self.leader()
        snap = {
            'leader': lead,
            'cpu_etcd': sum(cpu(p.pid) for p in self.etcd_procs),
            'cpu_leader': cpu(self.servers[lead].pid),
            'cpu_standbys': sum(cpu(p.pid) for i, p in self.servers.items()
                                if i != lead),
            'cpu_gateway': cpu(self.gateway.pid),
            'etcd': self._etcd_counters(),
            'cpu_machine': machine_busy_seconds(),
        }
        # The leader's own pipeline (a standby's status would be its own).
        res = self.lw.run([self.nlm_bench.binary('cli/lockwardenctl'),
                           '--server=127.0.0.1:%d' % SERVER_PORTS[lead],
                           '--timeout=5s', 'status', '--output', 'json'],
                          timeout=30, check=False)
        stats = (json.loads(res.stdout).get('commit_stats', {})
                 if res.returncode == 0 else {})
        snap['txns'] = float(stats.get('commits', 0))
        snap['deltas'] = float(stats.get('mean_batch_size', 0)) * snap['txns']
        snap['mutations'] = float(stats.get('mutations', 0))
        snap['commit_p50_us'] = float(stats.get('mean_commit_latency_us', 0))
        return snap

    @staticmethod
    def report(before, after, pairs, wall):
        if before['leader'] != after['leader']:
            print('  (leader changed during the run: profile skipped)')
            return
        d = lambda k: after[k] - before[k]  # noqa: E731
        e = lambda k: after['etcd'][k] - before['etcd'][k]  # noqa: E731
        us = lambda s: s * 1e6 / max(1, pairs)  # noqa: E731
        txns = max(1.0, d('txns'))
        print('  CPU us/pair: etcd (3 members) %.0f, leader %.0f, standbys %.0f, '
              'gateway %.0f; busy %.2f of 2 vCPUs (these daemons only)' % (
                  us(d('cpu_etcd')), us(d('cpu_leader')), us(d('cpu_standbys')),
                  us(d('cpu_gateway')),
                  (d('cpu_etcd') + d('cpu_leader') + d('cpu_standbys') +
                   d('cpu_gateway')) / wall))
        others = d('cpu_machine') - (d('cpu_etcd') + d('cpu_leader') +
                                     d('cpu_standbys') + d('cpu_gateway'))
        print('  machine: busy %.2f of %d vCPUs; everything else (clients, '
              'other work) %.0f us/pair' % (d('cpu_machine') / wall,
                                             os.cpu_count(), us(others)))
        print('  leader: %.0f Txns/s, %.1f deltas and %.1f mutations per Txn, '
              'commit p50 %.0f us' % (
                  d('txns') / wall, d('deltas') / txns, d('mutations') / txns,
                  after['commit_p50_us']))
        fsyncs = max(1.0, e('wal_fsyncs'))
        commits = max(1.0, e('backend_commits'))
        print('  etcd (sum of 3 members): %.0f WAL fsyncs/s (mean %.2f ms), '
              '%.0f backend commits/s (mean %.2f ms), %.0f proposals applied/s, '
              '%.0f Txn and %.0f Range RPCs/s' % (
                  e('wal_fsyncs') / wall, e('wal_fsync_s') * 1e3 / fsyncs,
                  e('backend_commits') / wall, e('backend_commit_s') * 1e3 / commits,
                  e('proposals_applied') / wall, e('txn_rpcs') / wall,
                  e('range_rpcs') / wall),
              flush=True)


def throughput(args, nlm_bench, client, rdb, ganesha, profile=None):
    from tests.harness import peers  # noqa: E402
    targets = []
    stores = args.stores.split(',')
    if 'etcd' in stores:
        targets.append(('etcd (3 servers, 3-member etcd)', 'lw', 'aa' * 32))
    if 'rocksdb' in stores:
        rdb_fh, _ = nlm_bench.start_lockwarden(rdb)
        targets.append(('rocksdb (single node)', 'rdb', rdb_fh))
    if 'ganesha' in stores:
        # As bench/nlm_bench.py runs it: in-memory NLM4, statd on both hosts.
        client.start_rpcbind()
        client.start_statd()
        targets.append(('Ganesha 4.3 NLM4 (in memory)', 'ganesha',
                        nlm_bench.start_ganesha(ganesha, client)))
    # The client host holds one extra lock everywhere, so it stays monitored
    # (otherwise statd's fsync of its monitor file dominates Ganesha's run).
    for _, host, fh in targets:
        peers.nlm_client(client, ['--server', host, '--port', str(NLM_PORT),
                                  '--caller', 'client', '--fh', fh,
                                  'lock:svid=999999,excl=1,offset=999999,len=1'])
    counts = [int(c) for c in args.clients.split(',')]
    results = {}
    for c in counts:
        for run in range(args.runs):
            for name, host, fh in targets:
                before = profile.snapshot() if profile and host == 'lw' else None
                busy = machine_busy_seconds()
                r = nlm_bench.run_load(client, host, fh, c, args.seconds, False,
                                       1000 + run * 1000)
                # CPU of the whole machine per pair: this system, the clients
                # and whatever else ran (other users of the VM).
                machine_us = ((machine_busy_seconds() - busy) * 1e6 /
                              max(1.0, r[0] * r[3]))
                results.setdefault((name, c), []).append(r[:3] + (machine_us,))
                print('%s, %d clients, run %d: %.0f pairs/s, LOCK p50 %.0f us, '
                      'machine CPU %.0f us/pair, load %s' % (
                          name, c, run + 1, r[0], r[1], machine_us,
                          open('/proc/loadavg').read().split()[0]), flush=True)
                if before is not None:
                    profile.report(before, profile.snapshot(), r[0] * r[3], r[3])
    print('\n| clients | system | pairs/s (median of %d) | LOCK p50 µs | LOCK p99 µs '
          '| machine CPU µs/pair |' % args.runs)
    print('|---:|---|---:|---:|---:|---:|')
    for c in counts:
        med = {}
        for name, host, _ in targets:
            rs = results[(name, c)]
            med[host] = statistics.median(r[0] for r in rs)
            print('| %d | %s | %.0f | %.0f | %.0f | %.0f |' % (
                c, name, med[host], statistics.median(r[1] for r in rs),
                statistics.median(r[2] for r in rs),
                statistics.median(r[3] for r in rs)))
        for host in ('lw', 'rdb'):
            if host in med and 'ganesha' in med:
                print('| %d | ratio %s / Ganesha | %.2f | | | |' % (
                    c, 'etcd' if host == 'lw' else 'rocksdb',
                    med[host] / med['ganesha']))


if __name__ == '__main__':
    main()
