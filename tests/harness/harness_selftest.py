"""Self-test of the multi-host harness, with real peers only.

Proves, before any lockwarden binary exists, that the pieces conformance
tests stand on work here: namespaces that reach each other, rpcbind and
rpc.statd per host, sm-notify -> rpc.statd across hosts with a clean
capture, NFS-Ganesha's NLM4 driven by tests/peers/nlm_client (conflicts
between owners, a blocking lock and its GRANTED callback), and cleanup that
leaves nothing behind.

A peer that cannot run here makes its test skip with the reason; nothing is
faked.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

from tests.harness import capture
from tests.harness import netns
from tests.harness import peers

CALLBACK_PORT = 4045  # the port Linux lockd uses; any free port works
GANESHA_NLM_PORT = peers.GANESHA_NLM_PORT
MISSING_TOOLS = [t for t in ('ip', 'unshare', 'rpcbind', 'rpc.statd',
                             'sm-notify', 'rpcinfo', 'dumpcap', 'tshark',
                             'ping')
                 if shutil.which(t) is None]


def _environment_problem():
    if os.geteuid() != 0:
        return 'needs root (network and mount namespaces)'
    if MISSING_TOOLS:
        return 'missing tools: %s (run scripts/install-deps)' % MISSING_TOOLS
    return None


def _pid_running(pid):
    """True if `pid` exists and is not a zombie."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


class NetworkTest(unittest.TestCase):
    """Two hosts with rpcbind and statd each, shared by the tests below."""

    @classmethod
    def setUpClass(cls):
        problem = _environment_problem()
        if problem:
            raise unittest.SkipTest(problem)
        netns.cleanup_stale()
        cls.topo = netns.Topology(['alpha', 'beta']).__enter__()
        try:
            for host in cls.topo.hosts.values():
                host.start_rpcbind()
                host.start_statd()
        except BaseException:
            cls.topo.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.topo.close()

    def test_hosts_ping_each_other_over_ipv4_and_ipv6(self):
        a, b = self.topo['alpha'], self.topo['beta']
        for src, dst in ((a, b), (b, a)):
            for target in (dst.ipv4, dst.ipv6, dst.name, dst.name + '-v6'):
                res = src.run(['ping', '-c', '1', '-W', '2', target])
                self.assertIn('1 received', res.stdout, target)

    def test_start_waits_until_ready_and_reports_an_early_exit(self):
        b = self.topo['beta']
        with self.assertRaises(netns.HarnessError) as ctx:
            b.start(['sh', '-c', 'echo giving up; exit 3'], name='quitter',
                    tcp_ports=[7777], timeout=5)
        self.assertIn('giving up', str(ctx.exception))
        proc = b.start(['sh', '-c', 'echo ready; exec sleep 600'],
                       name='sleeper', ready_regex=r'^ready$', timeout=5)
        self.assertTrue(proc.alive())
        proc.stop()

    def test_hosts_have_private_run_and_hostname(self):
        a = self.topo['alpha']
        self.assertEqual(a.run(['hostname']).stdout.strip(), 'alpha')
        # statd's pid file is in alpha's private /run, not the machine's.
        self.assertTrue(os.path.exists(os.path.join(a.run_dir,
                                                    'rpc.statd.pid')))
        res = a.run(['cat', '/run/rpc.statd.pid'])
        self.assertEqual(int(res.stdout), a.statd.pid)

    def test_rpcbind_answers_rpcinfo_from_the_other_host(self):
        regs = peers.rpcinfo_p(self.topo['alpha'], 'beta')
        self.assertIn(peers.Registration(100000, 2, 'udp', 111), regs)
        self.assertIn(peers.Registration(100000, 2, 'tcp', 111), regs)

    def test_statd_registers_with_its_own_rpcbind(self):
        a = self.topo['alpha']
        regs = peers.rpcinfo_p(a, 'beta')
        self.assertIn(peers.Registration(100024, 1, 'udp', 6620), regs)
        self.assertIn(peers.Registration(100024, 1, 'tcp', 6620), regs)
        self.assertTrue(peers.rpcinfo_T(a, 'udp', 'beta', 100024, 1))
        self.assertTrue(peers.rpcinfo_T(a, 'tcp', 'beta', 100024, 1))
        # Nothing serves NLM on beta: rpcinfo must say so, not hang.
        self.assertFalse(peers.rpcinfo_T(a, 'tcp', 'beta', 100021, 4))

    def test_sm_notify_reaches_statd_on_the_other_host(self):
        a, b = self.topo['alpha'], self.topo['beta']
        pcap = os.path.join(self.topo.workdir, 'sm_notify.pcapng')
        cap = b.capture(pcap, [111, 6620])
        log_start = len(b.statd.log_text())
        result = peers.sm_notify(a, os.path.join(a.dir, 'nsm-notify'),
                                 ['beta'], 'alpha', 7)
        self.assertEqual(result.unacknowledged, [], result.output)
        b.statd.wait_for_log(r'Received SM_NOTIFY from alpha, state: 7',
                             timeout=5, start=log_start)
        report = capture.check_capture_clean(cap.stop())
        self.assertEqual(report.problems, [])
        self.assertEqual(report.calls['NSM1 NOTIFY'], 1, report)
        self.assertEqual(report.replies['NSM1 NOTIFY'], 1, report)
        self.assertGreaterEqual(report.calls['PORTMAP2 GETPORT'], 1, report)

    def test_statd_monitor_then_notify_calls_back_the_local_nlm(self):
        # The whole NSM chain the gateway replaces, with real peers: beta's
        # "lockd" (our callback server) asks beta's statd to monitor alpha;
        # alpha reboots (sm-notify); beta's statd calls the callback.
        a, b = self.topo['alpha'], self.topo['beta']
        cb = peers.start_nlm_callbacks(b, 4045, count=1, max_seconds=30)
        mon = 'name=alpha,my_name=localhost,prog=100021,vers=4,proc=16'
        replies, _ = peers.nsm_client(b, [
            '--server', '127.0.0.1', 'stat:name=alpha',
            'mon:%s,priv=00112233445566778899aabbccddeeff' % mon])
        self.assertRegex(replies[0].result, r'^STAT_SUCC state=\d+$')
        self.assertRegex(replies[1].result, r'^STAT_SUCC state=\d+$')
        # statd writes the monitor record where sm-notify will look for it.
        self.assertTrue(os.path.exists(os.path.join(b.nfs_dir, 'sm',
                                                    'alpha')))
        result = peers.sm_notify(a, os.path.join(a.dir, 'nsm-reboot'),
                                 ['beta'], 'alpha', 9)
        self.assertEqual(result.unacknowledged, [], result.output)
        m = cb.wait_for_log(r'^SM_NOTIFY_CB mon_name=alpha state=9 '
                            r'priv=00112233445566778899aabbccddeeff '
                            r'from=127\.0\.0\.1', timeout=10)
        self.assertTrue(m)
        cb.wait(10)
        replies, _ = peers.nsm_client(b, ['--server', '127.0.0.1',
                                          'unmon:' + mon])
        self.assertRegex(replies[0].result, r'^state=\d+$')
        # From another host statd refuses to monitor (loopback only).
        replies, _ = peers.nsm_client(a, ['--server', 'beta', 'mon:' + mon])
        self.assertRegex(replies[0].result, r'^STAT_FAIL')

    def test_sm_notify_rejects_an_even_state(self):
        with self.assertRaises(ValueError):
            peers.prepare_nsm_state_dir(
                os.path.join(self.topo.workdir, 'even'), ['beta'], 'alpha', 4)


@unittest.skipIf(shutil.which('ganesha.nfsd') is None,
                 'NFS-Ganesha not installed (scripts/install-deps)')
class GaneshaNlmTest(unittest.TestCase):
    """nlm_client against NFS-Ganesha 4.3's NLM4 in another namespace."""

    @classmethod
    def setUpClass(cls):
        problem = _environment_problem()
        if problem:
            raise unittest.SkipTest(problem)
        cls.topo = netns.Topology(['client', 'server']).__enter__()
        try:
            for host in cls.topo.hosts.values():
                host.start_rpcbind()
                host.start_statd()
            cls.server, cls.client = cls.topo['server'], cls.topo['client']
            cls.ganesha = peers.start_ganesha(cls.server)
            cls.fh = cls.new_file(cls, 'locked')
        except BaseException:
            cls.topo.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.topo.close()

    def setUp(self):
        self.crashed_before = self.topo.crashed()

    def tearDown(self):
        # Every test must leave Ganesha running, and no peer it started may
        # have died by a signal or an error.
        self.assertTrue(self.ganesha.alive(), self.ganesha.log_text())
        new = [p for p in self.topo.crashed()
               if p not in self.crashed_before]
        self.assertEqual(new, [], [(p, p.log_text()) for p in new])

    def new_file(self, name):
        """Creates a file on Ganesha's export; returns its handle (hex)."""
        _, res = peers.nlm_client(self.client, [
            '--server', 'server', '--mount-export', '/export', '--file', name,
            '--create'], timeout=20)
        return res.stdout.split('fh=', 1)[1].split()[0]

    def nlm(self, *args, udp=False, check=True, fh=None):
        argv = ['--server', 'server', '--caller', 'client', '--fh',
                fh or self.fh]
        if udp:
            argv.append('--udp')
        replies, _ = peers.nlm_client(self.client, argv + list(args),
                                      check=check)
        return [(r.op, r.status) for r in replies], replies

    def test_two_owners_conflict_over_tcp_and_udp(self):
        for udp, base in ((False, 0), (True, 1000)):
            rng = 'offset=%d,len=100' % base
            got, replies = self.nlm(
                'test:svid=1,excl=1,' + rng,
                'lock:svid=1,excl=1,' + rng,
                'test:svid=2,excl=1,' + rng,
                'lock:svid=2,excl=1,' + rng,
                'unlock:svid=1,' + rng,
                'lock:svid=2,excl=1,' + rng,
                'unlock:svid=2,' + rng, udp=udp)
            self.assertEqual(got, [
                ('test', 'NLM4_GRANTED'), ('lock', 'NLM4_GRANTED'),
                ('test', 'NLM4_DENIED'), ('lock', 'NLM4_DENIED'),
                ('unlock', 'NLM4_GRANTED'), ('lock', 'NLM4_GRANTED'),
                ('unlock', 'NLM4_GRANTED')], 'udp=%s' % udp)
            # TEST names the holder: owner svid 1, its range, exclusive.
            self.assertIn('holder=svid:1,excl:1,offset:%d,len:100' % base,
                          replies[2].detail)

    def test_shared_locks_coexist_and_block_an_exclusive_one(self):
        got, _ = self.nlm('lock:svid=11,excl=0,offset=5000,len=10',
                          'lock:svid=12,excl=0,offset=5000,len=10',
                          'test:svid=13,excl=1,offset=5000,len=10',
                          'unlock:svid=11,offset=5000,len=10',
                          'unlock:svid=12,offset=5000,len=10',
                          'test:svid=13,excl=1,offset=5000,len=10')
        self.assertEqual([s for _, s in got], [
            'NLM4_GRANTED', 'NLM4_GRANTED', 'NLM4_DENIED', 'NLM4_GRANTED',
            'NLM4_GRANTED', 'NLM4_GRANTED'])

    def test_share_and_unshare_round_trip(self):
        # mode 1 = deny read, access 3 = read+write (fsh_mode/fsh_access).
        got, replies = self.nlm('share:svid=21,mode=1,access=3',
                                'share:svid=22,mode=0,access=1',
                                'unshare:svid=21,mode=1,access=3',
                                fh=self.new_file('shared'))
        self.assertEqual(got[0], ('share', 'NLM4_GRANTED'))
        self.assertEqual(got[2], ('unshare', 'NLM4_GRANTED'))
        # The conflicting SHARE should be DENIED, and is on an idle Ganesha,
        # but 4.3 grants it in about 1 run of 8 of this suite (README.md,
        # "Peer behaviour observed"), so only a well-formed answer is
        # required of the peer here.
        self.assertIn(got[1][1], ('NLM4_DENIED', 'NLM4_GRANTED'))
        for r in replies:
            self.assertNotIn('cookie-mismatch', r.detail)

    def start_callbacks(self, count):
        """nlm_client --serve-callbacks on the client host, registered with
        its rpcbind; exits after `count` callbacks."""
        return peers.start_nlm_callbacks(self.client, CALLBACK_PORT, count,
                                         max_seconds=30)

    def test_ipv6_tcp(self):
        got, replies = self.nlm('--server', 'server-v6',
                                'lock:svid=41,excl=1,offset=7000,len=1',
                                'test:svid=42,excl=1,offset=7000,len=1',
                                'unlock:svid=41,offset=7000,len=1')
        self.assertEqual([s for _, s in got], [
            'NLM4_GRANTED', 'NLM4_DENIED', 'NLM4_GRANTED'])

    def test_msg_calls_are_answered_by_res_callbacks(self):
        cb = self.start_callbacks(count=4)
        rng = 'offset=8000,len=5'
        got, replies = self.nlm('lock-msg:svid=51,excl=1,' + rng,
                                'test-msg:svid=52,excl=1,' + rng,
                                'unlock-msg:svid=51,' + rng,
                                'test-msg:svid=52,excl=1,' + rng, udp=True)
        self.assertEqual([s for _, s in got], ['SENT'] * 4)
        cb.wait(10)  # exits after the 4 *_RES calls
        res = [line for line in cb.log_text().splitlines()
               if '_RES ' in line]
        # The server may answer out of order; match answers by cookie
        # (nlm_client numbers its calls 1..4).
        by_cookie = {re.search(r'cookie=(\w*)', l).group(1): l for l in res}
        self.assertEqual(len(by_cookie), 4, res)
        self.assertTrue(by_cookie['00000001'].startswith(
            'LOCK_RES NLM4_GRANTED'))
        self.assertTrue(by_cookie['00000002'].startswith(
            'TEST_RES NLM4_DENIED holder=svid:51,excl:1,offset:8000,len:5'))
        self.assertTrue(by_cookie['00000003'].startswith(
            'UNLOCK_RES NLM4_GRANTED'))
        # Answers arrive asynchronously: TEST_MSG 4 may overtake UNLOCK_MSG 3
        # inside the server, so either answer is correct here.
        self.assertRegex(by_cookie['00000004'],
                         r'^TEST_RES NLM4_(GRANTED|DENIED)')

    def test_same_xid_is_a_retransmission_and_ganesha_reexecutes_it(self):
        # A duplicate request cache test needs a true retransmission: same
        # xid, same source port. Ganesha keeps no NLM duplicate request
        # cache, so the retransmitted LOCK after the UNLOCK locks again.
        pcap = os.path.join(self.topo.workdir, 'retransmit.pcapng')
        # UDP only: on a fresh libtirpc TCP connection tshark sometimes does
        # not recognise the first RPC records (about 1 run in 5), and a UDP
        # retransmission is the case a duplicate request cache exists for.
        # Over TCP the same wire xid is checked from nlm_client's output.
        cap = self.server.capture(pcap, [],
                                  bpf='udp port %d' % GANESHA_NLM_PORT)
        rng = 'offset=4000,len=5'
        for udp, xid in ((True, 0x4c570100), (False, 0x4c570200)):
            got, replies = self.nlm(
                'lock:svid=71,excl=1,%s,xid=%d' % (rng, xid),
                'unlock:svid=71,' + rng,
                'lock:svid=71,excl=1,%s,xid=%d' % (rng, xid),
                'test:svid=72,excl=1,' + rng,
                'unlock:svid=71,' + rng, udp=udp)
            self.assertEqual([s for _, s in got], [
                'NLM4_GRANTED', 'NLM4_GRANTED', 'NLM4_GRANTED', 'NLM4_DENIED',
                'NLM4_GRANTED'], 'udp=%s' % udp)
            wire_xid = re.search(r'xid=(0x\w+)', replies[0].detail).group(1)
            self.assertIn('xid=' + wire_xid, replies[2].detail)
        path = cap.stop()
        # Decode the port as RPC outright: tshark's UDP RPC heuristic
        # sometimes leaves a conversation's first calls undecoded (seen once
        # in CI: both LOCKs missing while the later UNLOCK/TEST decoded).
        report = capture.check_capture_clean(
            path, decode_as=['udp.port==%d,rpc' % GANESHA_NLM_PORT])
        self.assertEqual(report.problems, [])
        self.assertEqual(report.duplicate_calls['NLM4 LOCK'], 1,
                         '%s\n%s' % (report, capture.packet_list(path)))

    def test_repeat_summary_counts_every_call(self):
        _, res = peers.nlm_client(self.client, [
            '--server', 'server', '--caller', 'client', '--fh', self.fh,
            '--repeat', '50', '--summary',
            'lock:svid=61,excl=1,offset=6000,len=1',
            'test:svid=62,excl=1,offset=6000,len=1',
            'unlock:svid=61,offset=6000,len=1'], timeout=30)
        lines = res.stdout.splitlines()
        self.assertRegex(lines[0], r'^summary op=lock calls=50 rpc_errors=0 '
                         r'NLM4_GRANTED=50 p50_us=\d+ ')
        self.assertRegex(lines[1], r'^summary op=test calls=50 rpc_errors=0 '
                         r'NLM4_DENIED=50 ')
        self.assertRegex(lines[3], r'^summary total calls=150 ')

    def test_blocking_lock_is_granted_by_callback(self):
        cb = self.start_callbacks(count=1)
        rng = 'offset=9000,len=10'
        got, _ = self.nlm('lock:svid=31,excl=1,' + rng,
                          'lock-block:svid=32,excl=1,' + rng)
        self.assertEqual(got, [('lock', 'NLM4_GRANTED'),
                               ('lock-block', 'NLM4_BLOCKED')])
        got, _ = self.nlm('unlock:svid=31,' + rng)
        self.assertEqual(got, [('unlock', 'NLM4_GRANTED')])
        # Ganesha 4.3 sends GRANTED_MSG; GRANTED would do as well.
        m = cb.wait_for_log(r'^(GRANTED(?:_MSG)?) caller=client svid=32 '
                            r'oh=\S+ fh=(\S+) offset=9000 len=10 excl=1 ',
                            timeout=10)
        self.assertEqual(m.group(2), self.fh)
        cb.wait(10)  # --count 1: it exits after the callback
        # The lock now belongs to svid 32.
        got, replies = self.nlm('test:svid=33,excl=1,' + rng,
                                'unlock:svid=32,' + rng)
        self.assertEqual(got[0], ('test', 'NLM4_DENIED'))
        self.assertIn('holder=svid:32,', replies[0].detail)


class FloatingAddressTest(unittest.TestCase):

    def setUp(self):
        problem = _environment_problem()
        if problem:
            self.skipTest(problem)

    def test_moved_address_reaches_the_new_owner_by_name(self):
        with netns.Topology(['client', 'node1', 'node2']) as topo:
            client, node1, node2 = (topo['client'], topo['node1'],
                                    topo['node2'])
            for host in (node1, node2):
                host.start_rpcbind()
            node1.start_statd()  # only node1 serves NSM
            vip = topo.address(100)
            topo.set_name('nfs-vip', vip)
            topo.move_address(vip, None, node1)
            regs = peers.rpcinfo_p(client, 'nfs-vip')
            self.assertIn(peers.Registration(100024, 1, 'udp', 6620), regs)
            topo.move_address(vip, node1, node2)
            regs = peers.rpcinfo_p(client, 'nfs-vip')
            self.assertIn(peers.Registration(100000, 2, 'udp', 111), regs)
            self.assertNotIn(peers.Registration(100024, 1, 'udp', 6620),
                             regs)
            # The name can move too; running daemons see it on next lookup.
            topo.set_name('nfs-vip', node1.ipv4)
            regs = peers.rpcinfo_p(client, 'nfs-vip')
            self.assertIn(peers.Registration(100024, 1, 'udp', 6620), regs)


@unittest.skipIf(shutil.which('etcd') is None or
                 shutil.which('etcdctl') is None,
                 'etcd not installed (scripts/install-deps)')
class EtcdClusterTest(unittest.TestCase):

    def setUp(self):
        problem = _environment_problem()
        if problem:
            self.skipTest(problem)

    def test_three_members_serve_and_survive_one_loss(self):
        with netns.Topology(['e1', 'e2', 'e3', 'app']) as topo:
            members = [topo['e1'], topo['e2'], topo['e3']]
            procs_ = peers.start_etcd_cluster(members)
            app = topo['app']
            eps = peers.etcd_endpoints(members)
            peers.etcdctl(app, eps, ['put', 'lw/k', 'v1'])
            self.assertEqual(peers.etcdctl(app, eps, ['get', '--print-value-'
                                                      'only', 'lw/k']),
                             'v1\n')
            procs_[0].stop()  # one member down: quorum (2 of 3) remains
            eps2 = peers.etcd_endpoints(members[1:])
            deadline = time.monotonic() + 15
            while True:  # a new leader may need an election first
                out = peers.etcdctl(app, eps2, ['put', 'lw/k', 'v2'],
                                    check=False)
                if out.strip() == 'OK' or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            self.assertEqual(out.strip(), 'OK')
            self.assertEqual(peers.etcdctl(app, eps2, ['get', '--print-'
                                                       'value-only', 'lw/k']),
                             'v2\n')
            self.assertEqual(topo.crashed(), [])


class CleanupTest(unittest.TestCase):

    def setUp(self):
        problem = _environment_problem()
        if problem:
            self.skipTest(problem)

    def test_close_leaves_no_namespace_or_process(self):
        with netns.Topology(['one', 'two']) as topo:
            topo['one'].start_rpcbind()
            topo['one'].start_statd()
            sleeper = topo['two'].spawn(['sleep', '600'])
            names = topo.namespaces()
            pids = [p.pid for p in topo.processes()]
            self.assertTrue(all(n in netns.list_namespaces() for n in names))
            self.assertTrue(all(_pid_running(p) for p in pids))
            self.assertTrue(sleeper.alive())
        self.assertEqual(topo.leftovers(), [])
        self.assertFalse(any(n in netns.list_namespaces() for n in names))
        self.assertFalse(any(_pid_running(p) for p in pids))
        self.assertFalse(any(os.path.exists(os.path.join(
            netns.ETC_NETNS_DIR, n)) for n in names))

    def test_crashed_reports_a_signal_death_but_not_a_stop(self):
        with netns.Topology(['solo']) as topo:
            victim = topo['solo'].spawn(['sh', '-c', 'kill -SEGV $$'])
            stopped = topo['solo'].spawn(['sleep', '600'])
            clean = topo['solo'].spawn(['true'])
            victim.wait(5)
            clean.wait(5)
            stopped.stop()
            self.assertEqual(victim.returncode, -signal.SIGSEGV)
            self.assertEqual(topo.crashed(), [victim])

    def test_exception_inside_with_still_cleans_up(self):
        with self.assertRaises(RuntimeError):
            with netns.Topology(['solo']) as topo:
                proc = topo['solo'].spawn(['sleep', '600'])
                raise RuntimeError('test failure inside the topology')
        self.assertFalse(_pid_running(proc.pid))
        self.assertEqual(topo.leftovers(), [])

    def test_sigterm_cleans_up(self):
        # A child process builds a topology and gets SIGTERM, as Bazel's
        # test timeout would send; it must remove everything on its way out.
        script = (
            'import sys, time\n'
            'sys.path.insert(0, %r)\n'
            'from tests.harness import netns\n'
            'with netns.Topology(["victim"]) as t:\n'
            '    p = t["victim"].spawn(["sleep", "600"])\n'
            '    print(t["victim"].netns, p.pid, flush=True)\n'
            '    time.sleep(60)\n') % _import_root()
        child = subprocess.Popen([sys.executable, '-c', script],
                                 stdout=subprocess.PIPE, text=True)
        try:
            ns, pid = child.stdout.readline().split()
            self.assertIn(ns, netns.list_namespaces())
            child.send_signal(signal.SIGTERM)
            child.wait(30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
        self.assertNotIn(ns, netns.list_namespaces())
        self.assertFalse(_pid_running(int(pid)))

    def test_cleanup_stale_after_sigkill_removes_namespace_and_processes(
            self):
        # SIGKILL leaves no chance to clean up: the next run's
        # cleanup_stale() must find the namespace and the daemon inside.
        script = (
            'import sys, time\n'
            'sys.path.insert(0, %r)\n'
            'from tests.harness import netns\n'
            't = netns.Topology(["killed"]).__enter__()\n'
            'p = t["killed"].spawn(["sleep", "600"])\n'
            'print(t["killed"].netns, p.pid, flush=True)\n'
            'time.sleep(60)\n') % _import_root()
        child = subprocess.Popen([sys.executable, '-c', script],
                                 stdout=subprocess.PIPE, text=True)
        try:
            ns, pid = child.stdout.readline().split()
            child.kill()
            child.wait(10)
        finally:
            child.stdout.close()
        self.assertIn(ns, netns.list_namespaces())
        self.assertTrue(_pid_running(int(pid)))
        removed = netns.cleanup_stale()
        self.assertIn(ns, removed)
        self.assertNotIn(ns, netns.list_namespaces())
        deadline = time.monotonic() + 5
        while _pid_running(int(pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(_pid_running(int(pid)))
        self.assertFalse(os.path.exists(os.path.join(netns.ETC_NETNS_DIR,
                                                     ns)))

    def test_cleanup_stale_removes_only_dead_runs(self):
        dead = subprocess.Popen(['true'])
        dead.wait()
        stale = '%s%d-0-stale' % (netns.PREFIX, dead.pid)
        live = '%s%d-99-live' % (netns.PREFIX, os.getpid())
        for ns in (stale, live):
            subprocess.run(['ip', 'netns', 'add', ns], check=True)
        try:
            removed = netns.cleanup_stale()
            self.assertIn(stale, removed)
            self.assertNotIn(live, removed)
            self.assertNotIn(stale, netns.list_namespaces())
            self.assertIn(live, netns.list_namespaces())
        finally:
            for ns in (stale, live):
                subprocess.run(['ip', 'netns', 'delete', ns],
                               stderr=subprocess.DEVNULL)


def _import_root():
    """The directory `tests.harness` is imported from (for child
    processes)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(netns.__file__))))


if __name__ == '__main__':
    start = time.monotonic()
    try:
        unittest.main(verbosity=2)
    finally:
        print('harness_selftest: %.1fs' % (time.monotonic() - start))
