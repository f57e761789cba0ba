"""Conformance of lockwarden-gateway + lockwarden-server against real,
independent peers in network namespaces (tests/harness).

Hosts (198.18.<run>.0/24):
  server  - lockwarden-server (RocksDB, loopback gRPC) + lockwarden-gateway
            (--name=server, NLM 32803, NSM 662, registered with rpcbind)
  client  - rpcbind, rpc.statd, tests/peers/nlm_client (libnfs NLM4),
            nlm_client --serve-callbacks (the client's "lockd")
  other   - a second NFS client host
  solo    - a gateway host without rpcbind: the embedded portmapper on 111

Peers: libnfs (nlm_client, nsm_client), rpcinfo, sm-notify, rpc.statd,
tshark (every packet of the run decodes without a malformed frame).
"""

import os
import re
import shutil
import signal
import subprocess
import time
import unittest

from tests.harness import capture
from tests.harness import netns
from tests.harness import peers

NLM_PORT = 32803
NSM_PORT = 662
GRPC_PORT = 7420
CALLBACK_PORT = 4045
STATD_PORT = 6620
OH = '6f776e6572'  # "owner"
MISSING = [t for t in ('ip', 'unshare', 'rpcbind', 'rpc.statd', 'sm-notify',
                       'rpcinfo', 'dumpcap', 'tshark')
           if shutil.which(t) is None]


def environment_problem():
    if os.geteuid() != 0:
        return 'needs root (network and mount namespaces)'
    if MISSING:
        return 'missing tools: %s (run scripts/install-deps)' % MISSING
    return None


class Deployment:
    """lockwarden-server + lockwarden-gateway on one harness host."""

    def __init__(self, host, name, portmap_port=0, register=True):
        self.host = host
        self.name = name
        self.portmap_port = portmap_port
        self.register = register
        self.data_dir = os.path.join(host.dir, 'lockwarden-data')
        self.server = None
        self.gateway = None

    def start_server(self):
        self.server = self.host.start(
            [peers.runfile('server/lockwarden-server'),
             '--listen=127.0.0.1:%d' % GRPC_PORT,
             '--data-dir=' + self.data_dir, '--grant-timeout-ms=30000',
             '--grace-period-ms=5000'],
            name='lockwarden-server', tcp_ports=[GRPC_PORT],
            ready_regex=r'listening on port', timeout=20)

    def start_gateway(self):
        argv = [peers.runfile('gateway/lockwarden-gateway'),
                '--name=' + self.name,
                '--server=127.0.0.1:%d' % GRPC_PORT,
                '--nlm-port=%d' % NLM_PORT, '--nsm-port=%d' % NSM_PORT,
                '--portmap-port=%d' % self.portmap_port,
                '--failover-wait-ms=3000']
        if self.register:
            argv.append('--register-rpcbind')
        self.gateway = self.host.start(
            argv, name='lockwarden-gateway', tcp_ports=[NLM_PORT, NSM_PORT],
            udp_ports=[NLM_PORT, NSM_PORT],
            ready_regex=r'lockwarden-gateway ready', timeout=20)

    def ctl(self, *args, check=True):
        return self.host.run(
            [peers.runfile('cli/lockwardenctl'),
             '--server=127.0.0.1:%d' % GRPC_PORT, '--gateway-id=' + self.name]
            + list(args), timeout=20, check=check)

    def kill_gateway(self):
        os.kill(self.gateway.pid, signal.SIGKILL)
        self.gateway.wait(10)


class GatewayConformanceTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        problem = environment_problem()
        if problem:
            raise unittest.SkipTest(problem)
        netns.cleanup_stale()
        cls.topo = netns.Topology(['client', 'other', 'server'])
        cls.topo.__enter__()
        try:
            cls.client = cls.topo['client']
            cls.other = cls.topo['other']
            cls.host = cls.topo['server']
            for h in (cls.client, cls.other, cls.host):
                h.start_rpcbind()
            cls.client.start_statd(port=STATD_PORT)
            cls.cap = cls.host.capture(
                os.path.join(cls.topo.workdir, 'conformance.pcapng'),
                [111, NLM_PORT, NSM_PORT, CALLBACK_PORT, STATD_PORT])
            cls.dep = Deployment(cls.host, 'server')
            cls.dep.start_server()
            cls.dep.start_gateway()
        except BaseException:
            cls.topo.__exit__(None, None, None)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            report = capture.check_capture_clean(
                cls.cap.stop(),
                rpc_ports=[NLM_PORT, NSM_PORT, CALLBACK_PORT, STATD_PORT])
            cls.capture_report = report
        finally:
            crashed = cls.topo.crashed()
            cls.topo.__exit__(None, None, None)
        # Checked after cleanup so a failure here leaves nothing behind.
        assert report.problems == [], report.problems
        assert not crashed, crashed
        assert report.calls.get('NLM4 LOCK', 0) > 0, report.calls
        assert report.calls.get('NSM1 NOTIFY', 0) > 0, report.calls

    def nlm(self, *ops, host=None, udp=False, fh='0a0b0c', caller=None):
        host = host or self.client
        args = ['--server', 'server', '--caller', caller or host.name,
                '--fh', fh, '--oh', OH]
        if udp:
            args.append('--udp')
        replies, res = peers.nlm_client(host, args + list(ops))
        return [(r.op, r.status) for r in replies], replies

    def start_callbacks(self, count, host=None):
        return peers.start_nlm_callbacks(host or self.client, CALLBACK_PORT,
                                         count, max_seconds=60)

    # --- portmap / rpcbind -------------------------------------------------

    def test_rpcinfo_lists_nlm_and_nsm(self):
        regs = peers.rpcinfo_p(self.client, 'server')
        for vers in (1, 3, 4):
            for proto in ('udp', 'tcp'):
                self.assertIn(peers.Registration(100021, vers, proto, NLM_PORT),
                              regs)
        for proto in ('udp', 'tcp'):
            self.assertIn(peers.Registration(100024, 1, proto, NSM_PORT), regs)
        for netid in ('udp', 'tcp'):
            self.assertTrue(peers.rpcinfo_T(self.client, netid, 'server',
                                            100021, 4))
            self.assertTrue(peers.rpcinfo_T(self.client, netid, 'server',
                                            100024, 1))

    # --- NLM4 through libnfs -----------------------------------------------

    def test_lock_test_unlock_between_two_owners(self):
        for udp, base in ((False, 100), (True, 200)):
            rng = 'offset=%d,len=10' % base
            got, replies = self.nlm('lock:svid=1,excl=1,' + rng,
                                    'test:svid=2,excl=1,' + rng,
                                    'lock:svid=2,excl=1,' + rng,
                                    'unlock:svid=1,' + rng,
                                    'lock:svid=2,excl=1,' + rng,
                                    'unlock:svid=2,' + rng, udp=udp)
            self.assertEqual([s for _, s in got], [
                'NLM4_GRANTED', 'NLM4_DENIED', 'NLM4_DENIED', 'NLM4_GRANTED',
                'NLM4_GRANTED', 'NLM4_GRANTED'], 'udp=%s' % udp)
            self.assertIn('holder=svid:1,excl:1,offset:%d,len:10' % base,
                          replies[1].detail)

    def test_other_host_conflicts_and_shared_locks_coexist(self):
        rng = 'offset=300,len=10'
        got, _ = self.nlm('lock:svid=1,excl=0,' + rng)
        self.assertEqual(got, [('lock', 'NLM4_GRANTED')])
        got, _ = self.nlm('lock:svid=1,excl=0,' + rng,
                          'lock:svid=1,excl=1,' + rng, host=self.other)
        self.assertEqual([s for _, s in got], ['NLM4_GRANTED', 'NLM4_DENIED'])
        self.nlm('unlock:svid=1,' + rng, host=self.other)
        self.nlm('unlock:svid=1,' + rng)

    def test_cancel_removes_a_blocked_request(self):
        rng = 'offset=400,len=10'
        got, _ = self.nlm('lock:svid=1,excl=1,' + rng,
                          'lock-block:svid=2,excl=1,' + rng,
                          'cancel:svid=2,excl=1,' + rng,
                          'cancel:svid=2,excl=1,' + rng,
                          'unlock:svid=1,' + rng,
                          'test:svid=3,excl=1,' + rng)
        self.assertEqual([s for _, s in got], [
            'NLM4_GRANTED', 'NLM4_BLOCKED', 'NLM4_GRANTED', 'NLM4_DENIED',
            'NLM4_GRANTED', 'NLM4_GRANTED'])

    def test_blocking_lock_is_granted_by_callback(self):
        cb = self.start_callbacks(count=1)
        rng = 'offset=500,len=10'
        got, _ = self.nlm('lock:svid=31,excl=1,' + rng,
                          'lock-block:svid=32,excl=1,' + rng)
        self.assertEqual([s for _, s in got], ['NLM4_GRANTED', 'NLM4_BLOCKED'])
        got, _ = self.nlm('unlock:svid=31,' + rng)
        self.assertEqual(got, [('unlock', 'NLM4_GRANTED')])
        cb.wait_for_log(r'^GRANTED(?:_MSG)? caller=\S+ svid=32 .*offset=500 '
                        r'len=10 excl=1', timeout=15)
        cb.wait(15)
        got, replies = self.nlm('test:svid=33,excl=1,' + rng,
                                'unlock:svid=32,' + rng)
        self.assertEqual(got[0], ('test', 'NLM4_DENIED'))
        self.assertIn('holder=svid:32,', replies[0].detail)

    def test_msg_calls_are_answered_by_res_callbacks(self):
        cb = self.start_callbacks(count=3)
        rng = 'offset=600,len=5'
        got, _ = self.nlm('lock-msg:svid=51,excl=1,' + rng,
                          'sleep:ms=300',
                          'test-msg:svid=52,excl=1,' + rng,
                          'sleep:ms=300',
                          'unlock-msg:svid=51,' + rng, udp=True)
        self.assertEqual([s for op, s in got if op != 'sleep'], ['SENT'] * 3)
        cb.wait(20)
        res = [l for l in cb.log_text().splitlines() if '_RES ' in l]
        by_cookie = {re.search(r'cookie=(\w*)', l).group(1): l for l in res}
        self.assertEqual(len(by_cookie), 3, res)
        texts = sorted(by_cookie.values())
        self.assertTrue(any(t.startswith('LOCK_RES NLM4_GRANTED') for t in texts), texts)
        self.assertTrue(any(t.startswith('TEST_RES NLM4_DENIED holder=svid:51')
                            for t in texts), texts)
        self.assertTrue(any(t.startswith('UNLOCK_RES NLM4_GRANTED') for t in texts), texts)

    def test_retransmitted_lock_is_answered_from_the_cache(self):
        # Same xid, same source port: the retransmission after the UNLOCK
        # must not lock again (Ganesha, kernel lockd: it does).
        for udp, xid, base in ((True, 0x4c570100, 700), (False, 0x4c570200, 800)):
            rng = 'offset=%d,len=5' % base
            # Identical bytes: same xid and the same cookie (nlm_client
            # numbers cookies per call unless told).
            lock = 'lock:svid=71,excl=1,%s,xid=%d,cookie=c0ffee' % (rng, xid)
            got, _ = self.nlm(lock, 'unlock:svid=71,' + rng, lock,
                              'test:svid=72,excl=1,' + rng, udp=udp)
            self.assertEqual([s for _, s in got], [
                'NLM4_GRANTED', 'NLM4_GRANTED', 'NLM4_GRANTED', 'NLM4_GRANTED'],
                'udp=%s: the retransmitted LOCK was re-executed' % udp)

    # --- NLM v1 / v3 (32-bit) through libtirpc from our nlm_prot.x ---------

    def legacy(self, vers, *ops, host=None, udp=False, fh='0d0e0f', svid=1,
               offset=0, length=10, exclusive=True, extra=()):
        host = host or self.client
        args = ['--server', 'server', '--vers', str(vers), '--caller',
                host.name, '--svid', str(svid), '--fh', fh, '--oh', OH,
                '--offset', str(offset), '--length', str(length)]
        if exclusive:
            args.append('--exclusive')
        if udp:
            args.append('--udp')
        replies, _ = peers.nlm_legacy_client(host, args + list(extra) +
                                             list(ops))
        return replies

    def test_v1_v3_lock_test_unlock_between_two_hosts(self):
        for vers in (1, 3):
            for udp in (False, True):
                fh = 'a1%02x%02x' % (vers, int(udp))
                what = 'v%d udp=%s' % (vers, udp)
                got = self.legacy(vers, 'lock', 'test', fh=fh, udp=udp)
                self.assertEqual([r.status for r in got],
                                 ['LCK_GRANTED', 'LCK_GRANTED'], what)
                got = self.legacy(vers, 'test', 'lock', fh=fh, udp=udp,
                                  host=self.other, offset=5)
                self.assertEqual([r.status for r in got],
                                 ['LCK_DENIED', 'LCK_DENIED'], what)
                self.assertIn('holder svid=1 offset=0 length=10 exclusive=1',
                              got[0].detail, what)
                got = self.legacy(vers, 'unlock', fh=fh, udp=udp)
                self.assertEqual(got[0].status, 'LCK_GRANTED', what)
                got = self.legacy(vers, 'lock', 'unlock', fh=fh, udp=udp,
                                  host=self.other, offset=5)
                self.assertEqual([r.status for r in got],
                                 ['LCK_GRANTED', 'LCK_GRANTED'], what)

    def test_v3_sees_64_bit_v4_locks_as_far_as_32_bits_can_say(self):
        fh = 'a20001'
        # A v4 lock wholly past 2^32 - 1: v3 cannot name its holder.
        got, _ = self.nlm('lock:svid=7,excl=1,offset=%d,len=10' % (2**34 + 5),
                          fh=fh, host=self.other)
        self.assertEqual(got, [('lock', 'NLM4_GRANTED')])
        got = self.legacy(3, 'test', fh=fh, offset=0, length=0)
        self.assertEqual(got[0].status, 'LCK_DENIED_NOLOCKS')
        # One that starts below 2^32 and ends above: length 0 (to EOF).
        got, _ = self.nlm('lock:svid=8,excl=1,offset=100,len=%d' % 2**33,
                          fh=fh, host=self.other)
        self.assertEqual(got, [('lock', 'NLM4_GRANTED')])
        got = self.legacy(1, 'test', fh=fh, offset=0, length=0)
        self.assertEqual(got[0].status, 'LCK_DENIED')
        self.assertIn('holder svid=8 offset=100 length=0', got[0].detail)
        self.nlm('unlock:svid=7,offset=0,len=0', 'unlock:svid=8,offset=0,len=0',
                 fh=fh, host=self.other)
        # A v3 range running past 2^32 - 1 is "to end of file" (like lockd):
        # it conflicts with a v4 request far beyond 32 bits.
        got = self.legacy(3, 'lock', fh=fh, offset=2**32 - 6, length=100)
        self.assertEqual(got[0].status, 'LCK_GRANTED')
        got, _ = self.nlm('test:svid=9,excl=1,offset=%d,len=1' % 2**40, fh=fh,
                          host=self.other)
        self.assertEqual(got, [('test', 'NLM4_DENIED')])
        self.legacy(3, 'unlock', fh=fh, offset=2**32 - 6, length=100)

    def test_v3_share_reservations_conflict_by_access_and_deny(self):
        fh = 'a30001'
        # client: read+write, deny write; other: write access is refused.
        got = self.legacy(3, 'share', fh=fh, extra=['--access', '3',
                                                    '--mode', '2'])
        self.assertEqual(got[0].status, 'LCK_GRANTED')
        got = self.legacy(3, 'share', fh=fh, host=self.other,
                          extra=['--access', '2', '--mode', '0'])
        self.assertEqual(got[0].status, 'LCK_DENIED')
        got = self.legacy(3, 'share', fh=fh, host=self.other,
                          extra=['--access', '1', '--mode', '0'])
        self.assertEqual(got[0].status, 'LCK_GRANTED', 'read is not denied')
        got = self.legacy(3, 'unshare', fh=fh, extra=['--access', '3',
                                                      '--mode', '2'])
        self.assertEqual(got[0].status, 'LCK_GRANTED')
        got = self.legacy(3, 'share', fh=fh, host=self.other,
                          extra=['--access', '2', '--mode', '0'])
        self.assertEqual(got[0].status, 'LCK_GRANTED')
        self.legacy(3, 'unshare', fh=fh, host=self.other,
                    extra=['--access', '3', '--mode', '0'])

    # Runs after the sm-notify test (z): NSM state numbers only grow, and
    # this one announces a later state for the same client.
    def test_z_nm_lock_survives_sm_notify_and_free_all_releases_it(self):
        fh = 'a40001'
        # NM_LOCK: a client without statd. Its reboot notice must not end
        # the lock; only FREE_ALL (sent by such a client on boot) does.
        got = self.legacy(3, 'nm_lock', fh=fh, extra=['--state', '3'])
        self.assertEqual(got[0].status, 'LCK_GRANTED')
        state_dir = os.path.join(self.topo.workdir, 'client-sm-nm')
        left = peers.sm_notify(self.client, state_dir, ['server'], 'client',
                               101)
        self.assertEqual(left.unacknowledged, [], left.output)
        time.sleep(1.0)
        got = self.legacy(3, 'test', fh=fh, host=self.other, svid=2)
        self.assertEqual(got[0].status, 'LCK_DENIED',
                         'SM_NOTIFY released an NM_LOCK lock')
        got = self.legacy(3, 'free_all', fh=fh, extra=['--state', '103'])
        self.assertEqual(got[0].status, 'SENT')
        deadline = time.monotonic() + 10
        while True:
            got = self.legacy(3, 'test', fh=fh, host=self.other, svid=2)
            if got[0].status == 'LCK_GRANTED' or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(got[0].status, 'LCK_GRANTED',
                         'FREE_ALL did not release the NM_LOCK lock')

    # --- NSM: sm-notify, rpc.statd -----------------------------------------

    def test_sm_notify_releases_older_locks_and_a_stale_one_nothing(self):
        rng = 'offset=900,len=10'
        got, _ = self.nlm('lock:svid=81,excl=1,state=3,' + rng,
                          caller='client')
        self.assertEqual(got, [('lock', 'NLM4_GRANTED')])
        state_dir = os.path.join(self.topo.workdir, 'client-sm-1')
        left = peers.sm_notify(self.client, state_dir, ['server'], 'client', 5)
        self.assertEqual(left.unacknowledged, [], left.output)
        self._wait_test_status(rng, 'NLM4_GRANTED')  # released
        # New incarnation takes the lock; the same notify again is stale.
        got, _ = self.nlm('lock:svid=81,excl=1,state=5,' + rng)
        self.assertEqual(got, [('lock', 'NLM4_GRANTED')])
        state_dir = os.path.join(self.topo.workdir, 'client-sm-2')
        peers.sm_notify(self.client, state_dir, ['server'], 'client', 5)
        time.sleep(1.0)
        got, _ = self.nlm('test:svid=9,excl=1,' + rng, host=self.other)
        self.assertEqual(got, [('test', 'NLM4_DENIED')],
                         'a stale SM_NOTIFY must release nothing')
        self.nlm('unlock:svid=81,' + rng)

    def _wait_test_status(self, rng, want, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            got, _ = self.nlm('test:svid=9,excl=1,' + rng, host=self.other)
            if got == [('test', want)] or time.monotonic() > deadline:
                self.assertEqual(got, [('test', want)])
                return
            time.sleep(0.2)

    def test_nsm_answers_with_a_durable_odd_state(self):
        replies, _ = peers.nsm_client(self.client, [
            '--server', 'server', '--port', str(NSM_PORT), 'stat:name=client'])
        self.assertRegex(replies[0].result, r'^STAT_SUCC state=\d*[13579]$')

    # Runs last (zz): SIMU_CRASH starts a grace period on the identity.
    def test_zz_simu_crash_notifies_a_real_statd_which_calls_its_lockd(self):
        cb = self.start_callbacks(count=0)
        # The client's statd monitors the server for its "lockd" (the
        # callback server, NLM v4 proc 16).
        replies, _ = peers.nsm_client(self.client, [
            '--server', '127.0.0.1', 'mon:name=server,my_name=localhost,'
            'prog=100021,vers=4,proc=16,priv=' + '11' * 16])
        self.assertTrue(replies[0].result.startswith('STAT_SUCC'), replies)
        # A monitored lock makes the gateway monitor the client.
        got, _ = self.nlm('lock:svid=91,excl=1,state=7,offset=1000,len=1')
        self.assertEqual(got, [('lock', 'NLM4_GRANTED')])
        before, _ = peers.nsm_client(self.host, [
            '--server', '127.0.0.1', '--port', str(NSM_PORT),
            'stat:name=server'])
        old = int(re.search(r'state=(\d+)', before[0].result).group(1))
        # SM_SIMU_CRASH is accepted from loopback only.
        peers.nsm_client(self.host, ['--server', '127.0.0.1', '--port',
                                     str(NSM_PORT), 'simu-crash'])
        m = cb.wait_for_log(r'^SM_NOTIFY_CB mon_name=server state=(\d+) '
                            r'priv=(1{32})', timeout=30)
        self.assertEqual(int(m.group(1)), old + 2)
        cb.stop()


class EmbeddedPortmapperTest(unittest.TestCase):

    def setUp(self):
        problem = environment_problem()
        if problem:
            self.skipTest(problem)

    def test_rpcinfo_and_getport_against_the_embedded_portmapper(self):
        with netns.Topology(['client', 'solo']) as topo:
            client, solo = topo['client'], topo['solo']
            dep = Deployment(solo, 'solo', portmap_port=111, register=False)
            dep.start_server()
            dep.start_gateway()
            regs = peers.rpcinfo_p(client, 'solo')
            self.assertIn(peers.Registration(100021, 4, 'tcp', NLM_PORT), regs)
            self.assertIn(peers.Registration(100024, 1, 'udp', NSM_PORT), regs)
            self.assertTrue(peers.rpcinfo_T(client, 'tcp', 'solo', 100021, 4))
            # nlm_client without --port asks the portmapper.
            replies, _ = peers.nlm_client(client, [
                '--server', 'solo', '--caller', 'client', '--fh', 'aa',
                'lock:svid=1,excl=1,len=1', 'unlock:svid=1,len=1'])
            self.assertEqual([r.status for r in replies],
                             ['NLM4_GRANTED', 'NLM4_GRANTED'])
            self.assertEqual(topo.crashed(), [])


class GatewayCrashTest(unittest.TestCase):

    def setUp(self):
        problem = environment_problem()
        if problem:
            self.skipTest(problem)

    def test_new_gateway_delivers_grants_pending_while_it_was_dead(self):
        with netns.Topology(['client', 'server']) as topo:
            client, host = topo['client'], topo['server']
            client.start_rpcbind()
            host.start_rpcbind()
            dep = Deployment(host, 'server')
            dep.start_server()
            dep.start_gateway()
            cb = peers.start_nlm_callbacks(client, CALLBACK_PORT, 1,
                                           max_seconds=60)
            base = ['--server', 'server', '--caller', 'client', '--fh', 'bb',
                    '--oh', OH]
            replies, _ = peers.nlm_client(client, base + [
                'lock:svid=1,excl=1,offset=0,len=10',
                'lock-block:svid=2,excl=1,offset=0,len=10'])
            self.assertEqual([r.status for r in replies],
                             ['NLM4_GRANTED', 'NLM4_BLOCKED'])
            killed = dep.gateway
            dep.kill_gateway()
            # While no gateway runs, the holder's lock goes (through the
            # admin CLI): the waiter is granted in the server, durably.
            dep.ctl('unlock', '--fh=bb', '--client=client', '--svid=1',
                    '--oh=' + OH, '--offset=0', '--length=10')
            out = dep.ctl('locks', 'list', '--output', 'json').stdout
            self.assertIn('"svid": 2', out.replace('":2', '": 2'))
            dep.start_gateway()
            cb.wait_for_log(r'^GRANTED(?:_MSG)? caller=\S+ svid=2 ', timeout=20)
            cb.wait(20)
            replies, _ = peers.nlm_client(client, base + [
                'test:svid=3,excl=1,offset=0,len=10'])
            self.assertEqual(replies[0].status, 'NLM4_DENIED')
            self.assertIn('holder=svid:2,', replies[0].detail)
            self.assertEqual([p for p in topo.crashed() if p is not killed], [])


if __name__ == '__main__':
    unittest.main()
