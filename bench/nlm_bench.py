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
      [--systems lockwarden,ganesha] [--transports tcp,udp]
      [--perf-dir DIR [--perf-event context-switches]]   # perf record -g
                         # of server and gateway per run
      [--gateway-flags='--io-threads=1']   # extra gateway flags
      [--bin-dir-b DIR [--gateway-flags-b=...]]   # A/B: a second lockwarden

With --bin-dir-b (or --gateway-flags-b) a second lockwarden ("lockwarden-b",
on its own host) runs from those binaries/flags, interleaved with the first
in every round: a before/after comparison under the same machine load.

It also prints the CPU used per pair (utime+stime over the run) by the
lockwarden server and gateway (for Ganesha: ganesha.nfsd, in the server
column) and by the client processes: unlike pairs/s this hardly depends on
what else the shared machine is doing. So do the context switches per NLM
call of every daemon, printed per thread name (the wake-ups that set the
sequential latency).
"""

import argparse
import os
import signal
import re
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.harness import netns  # noqa: E402
from tests.harness import peers  # noqa: E402

NLM_PORT = 32803
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Set from --bin-dir in main(): the optimised build by default. (Not
# peers.runfile: that takes the newest copy under bazel-out/*/bin, which is a
# fastbuild binary whenever someone ran a test after the opt build.)
BIN_DIR = os.path.join(REPO, 'bazel-out', 'k8-opt', 'bin')


def binary(rel_path, bin_dir=None):
    path = os.path.join(bin_dir or BIN_DIR, rel_path)
    if not os.access(path, os.X_OK):
        raise SystemExit('%s not built (see the usage above)' % path)
    return path


def cpu_seconds(pid):
    """utime + stime of `pid` in seconds (from /proc/<pid>/stat)."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def thread_switches(pid):
    """{(tid, thread name): voluntary + involuntary context switches} of the
    live threads of `pid` (/proc/<pid>/task/*/status). A thread that exits
    during a run takes its count with it; the daemons' threads live as long
    as they do."""
    out = {}
    try:
        tids = os.listdir('/proc/%d/task' % pid)
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open('/proc/%d/task/%s/status' % (pid, tid)) as f:
                text = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        name = re.search(r'^Name:\s*(.*)$', text, re.M).group(1)
        out[(tid, name)] = sum(int(n) for n in re.findall(
            r'^(?:non)?voluntary_ctxt_switches:\s*(\d+)$', text, re.M))
    return out


def switches_by_name(before, after):
    """Context switches per thread name between two thread_switches()."""
    out = {}
    for key, n in after.items():
        out[key[1]] = out.get(key[1], 0) + n - before.get(key, 0)
    return out


def start_lockwarden(host, bin_dir=None, gateway_flags=()):
    """Returns (file handle, {'server': pid, 'gateway': pid})."""
    data = os.path.join(host.dir, 'lw-data')
    server = host.start([binary('server/lockwarden-server', bin_dir),
                '--listen=127.0.0.1:7420', '--data-dir=' + data,
                '--log-level=warn'],
               name='lockwarden-server', tcp_ports=[7420],
               ready_regex=r'listening on port', timeout=30)
    gateway = host.start([binary('gateway/lockwarden-gateway', bin_dir),
                '--name=' + host.name,
                '--server=127.0.0.1:7420', '--nlm-port=%d' % NLM_PORT,
                '--nsm-port=662', '--portmap-port=111', '--log-level=warn']
               + list(gateway_flags),
               name='lockwarden-gateway', tcp_ports=[NLM_PORT], udp_ports=[NLM_PORT],
               ready_regex=r'lockwarden-gateway ready', timeout=30)
    return 'aa' * 32, {'server': server.pid, 'gateway': gateway.pid}


def start_ganesha(host, client):
    """Returns (file handle, {'server': ganesha.nfsd's pid})."""
    host.start_rpcbind()
    host.start_statd()
    ganesha = peers.start_ganesha(host)
    _, res = peers.nlm_client(client, ['--server', host.name, '--mount-export',
                                       '/export', '--file', 'bench', '--create'],
                              timeout=30)
    return res.stdout.split('fh=', 1)[1].split()[0], {'server': ganesha.pid}


def children_cpu_seconds():
    """utime + stime of the waited-for children (the nlm_client processes)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


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
        argv = client.wrap([binary('tests/peers/nlm_client'),
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
    return calls / 2 / wall, statistics.median(p50s), max(p99s), wall


def start_perf(perf_dir, pids, udp, clients, run, event='cpu-clock'):
    """perf record -g (cpu-clock by default: this VM has no hardware
    counters; context-switches counts wake-ups) of each lockwarden daemon
    for one run; returns the perf processes."""
    os.makedirs(perf_dir, exist_ok=True)
    procs = []
    for name, pid in pids.items():
        out = os.path.join(perf_dir, '%s-%s-c%d-r%d.data' % (
            name, 'udp' if udp else 'tcp', clients, run))
        procs.append(subprocess.Popen(
            ['perf', 'record', '-e', event, '-g', '-q', '-o', out,
             '-p', str(pid)], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
    time.sleep(0.3)  # perf attaches before the load starts
    return procs


def stop_perf(procs):
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    global BIN_DIR
    ap = argparse.ArgumentParser()
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--seconds', type=float, default=2.0)
    ap.add_argument('--clients', default='1,16,64')
    ap.add_argument('--systems', default='lockwarden,ganesha')
    ap.add_argument('--transports', default='tcp,udp')
    ap.add_argument('--bin-dir', default=BIN_DIR,
                    help='where the opt binaries are (default %(default)s)')
    ap.add_argument('--perf-dir', default='',
                    help='perf record -g the lockwarden daemons into DIR')
    ap.add_argument('--perf-event', default='cpu-clock',
                    help='perf event for --perf-dir, e.g. context-switches')
    ap.add_argument('--gateway-flags', default='',
                    help='extra gateway flags, space-separated')
    ap.add_argument('--bin-dir-b', default='',
                    help='A/B: also run "lockwarden-b" from these binaries')
    ap.add_argument('--gateway-flags-b', default=None,
                    help='A/B: gateway flags of lockwarden-b '
                    '(default: --gateway-flags)')
    args = ap.parse_args()
    BIN_DIR = args.bin_dir
    print('binaries from %s' % BIN_DIR)
    counts = [int(c) for c in args.clients.split(',')]
    systems = args.systems.split(',')
    flags_a = args.gateway_flags.split()
    flags_b = (args.gateway_flags_b.split() if args.gateway_flags_b is not None
               else flags_a)
    if args.bin_dir_b or args.gateway_flags_b is not None:
        systems.insert(systems.index('lockwarden') + 1 if 'lockwarden' in
                       systems else 0, 'lockwarden-b')
        print('lockwarden-b: binaries from %s, gateway flags %r' % (
            args.bin_dir_b or BIN_DIR, flags_b))
    udps = [t == 'udp' for t in args.transports.split(',')]
    netns.cleanup_stale()
    with netns.Topology(['client', 'lw', 'lwb', 'ganesha']) as topo:
        client, lw, gan = topo['client'], topo['lw'], topo['ganesha']
        client.start_rpcbind()
        client.start_statd()
        pids = {}
        lw_fh, pids['lockwarden'] = start_lockwarden(lw, None, flags_a)
        lwb_fh = None
        if 'lockwarden-b' in systems:
            lwb_fh, pids['lockwarden-b'] = start_lockwarden(
                topo['lwb'], args.bin_dir_b or None, flags_b)
        gan_fh = None
        if 'ganesha' in systems:
            gan_fh, pids['ganesha'] = start_ganesha(gan, client)
        targets = [t for t in (('lockwarden', 'lw', lw_fh),
                               ('lockwarden-b', 'lwb', lwb_fh),
                               ('ganesha', 'ganesha', gan_fh))
                   if t[0] in systems]
        # Keep the client monitored on both (peer-sandbox.md).
        for _, host, fh in targets:
            peers.nlm_client(client, ['--server', host, '--port', str(NLM_PORT),
                                      '--caller', 'client', '--fh', fh,
                                      'lock:svid=999999,excl=1,offset=999999,len=1'])
        results = {}
        for udp in udps:
            for c in counts:
                for run in range(args.runs):
                    for name, host, fh in targets:
                        base = 1000 + run * 1000
                        lw_run = name.startswith('lockwarden')
                        sys_pids = pids.get(name, {})
                        perf = (start_perf(os.path.join(args.perf_dir, name),
                                           sys_pids, udp, c, run,
                                           args.perf_event)
                                if lw_run and args.perf_dir else [])
                        before = {k: cpu_seconds(p) for k, p in sys_pids.items()}
                        before['client'] = children_cpu_seconds()
                        cs_before = {k: thread_switches(p)
                                     for k, p in sys_pids.items()}
                        r = run_load(client, host, fh, c, args.seconds, udp, base)
                        pairs_done = max(1.0, r[0] * r[3])
                        cpu = {'client': (children_cpu_seconds() -
                                          before['client']) * 1e6 / pairs_done}
                        # Per NLM call (a pair is two calls), by thread name.
                        cs = {k: {n: v / (2 * pairs_done) for n, v in
                                  switches_by_name(cs_before[k],
                                                   thread_switches(p)).items()}
                              for k, p in sys_pids.items()}
                        for k, p in sys_pids.items():
                            cpu[k] = (cpu_seconds(p) - before[k]) * 1e6 / pairs_done
                        stop_perf(perf)
                        results.setdefault((name, udp, c), []).append(
                            r[:3] + (cpu, cs))
        print('| transport | clients | system | pairs/s (median of %d) | '
              'LOCK p50 µs | LOCK p99 µs | server CPU µs/pair | '
              'gateway CPU µs/pair | client CPU µs/pair |' % args.runs)
        print('|---|---:|---|---:|---:|---:|---:|---:|---:|')
        for udp in udps:
            for c in counts:
                med = {}
                for name in systems:
                    rs = results[(name, udp, c)]
                    pairs = statistics.median(r[0] for r in rs)
                    med[name] = pairs
                    cpus = [('%.0f' % statistics.median(r[3][k] for r in rs))
                            if k in rs[0][3] else ''
                            for k in ('server', 'gateway', 'client')]
                    print('| %s | %d | %s | %.0f | %.0f | %.0f | %s |' % (
                        'udp' if udp else 'tcp', c, name, pairs,
                        statistics.median(r[1] for r in rs),
                        statistics.median(r[2] for r in rs), ' | '.join(cpus)))
                for name in ('lockwarden', 'lockwarden-b'):
                    if name in med and 'ganesha' in med:
                        print('| %s | %d | ratio %s/ganesha | %.2f | | | | | |'
                              % ('udp' if udp else 'tcp', c, name,
                                 med[name] / med['ganesha']))
        print()
        print('Context switches per NLM call (voluntary + involuntary, '
              '/proc/<pid>/task/*/status; median of %d; busiest threads '
              'by name):' % args.runs)
        print('| transport | clients | system | daemon | switches/call | '
              'by thread |')
        print('|---|---:|---|---|---:|---|')
        for udp in udps:
            for c in counts:
                for name in systems:
                    rs = results[(name, udp, c)]
                    for daemon in sorted(rs[0][4]):
                        total = statistics.median(
                            sum(r[4][daemon].values()) for r in rs)
                        names = set().union(*(r[4][daemon] for r in rs))
                        per = sorted(((statistics.median(
                            r[4][daemon].get(n, 0.0) for r in rs), n)
                            for n in names), reverse=True)
                        print('| %s | %d | %s | %s | %.2f | %s |' % (
                            'udp' if udp else 'tcp', c, name, daemon, total,
                            ', '.join('%s %.2f' % (n, v)
                                      for v, n in per[:4] if v >= 0.05)))


if __name__ == '__main__':
    main()
