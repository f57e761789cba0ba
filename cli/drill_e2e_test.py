"""lockwardenctl drill failover / client-reboot against a replicated setup.

A 3-member etcd cluster on 127.0.0.1 (Debian's etcd, data in the test's temp
dir), three lockwarden-server instances with --store=etcd, and the real
lockwardenctl. Locks and waiters are seeded through the CLI; then:
  - `drill failover --kill-command 'kill -9 <pid of {leader_id}>'` must
    report zero loss (exit 0, "passed": true), a new leader under a higher
    fencing token, and a measured unavailability;
  - `drill failover` by AdminService.StepDown must do the same (skipped while
    the server build has no StepDown: it answers "single node");
  - `drill client-reboot` must pass on the replicated store too.
Every process is on loopback and is killed at the end. Bounded: each CLI run
has a timeout, every wait a deadline.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.request

from tests.harness import local_ha

DRILL_TIMEOUT_S = 120
LEADER_TIMEOUT_S = 30.0


class DrillTest(unittest.TestCase):

    def setUp(self):
        if shutil.which('etcd') is None or shutil.which('etcdctl') is None:
            self.skipTest('etcd/etcdctl not installed (scripts/install-deps)')
        self.workdir = tempfile.mkdtemp(
            dir=os.environ.get('TEST_UNDECLARED_OUTPUTS_DIR') or
            os.environ.get('TEST_TMPDIR'))
        self.cluster = local_ha.LocalHaCluster(self.workdir, members=3,
                                               metrics=True, pid_files=True)
        self.addCleanup(self.cluster.stop)
        self.cluster.start()
        self.wait_for_leader()
        self.seed()

    def wait_for_leader(self):
        deadline = time.monotonic() + LEADER_TIMEOUT_S
        last = ''
        while time.monotonic() < deadline:
            # `status` answers from the first server that responds, standby
            # or not, and any of the three may win the election: ask each.
            for port in self.cluster.ports.values():
                r = self.cluster.ctl('status', '-o', 'json', check=False,
                                     server='127.0.0.1:%d' % port)
                if r.returncode == 0:
                    st = json.loads(r.stdout)
                    if st.get('role') == 'SERVER_ROLE_LEADER':
                        return st
                    last = r.stdout
                else:
                    last = r.stderr
            time.sleep(0.2)
        raise AssertionError('no leader: %s' % last)

    def seed(self):
        """Five monitored locks of five clients and two waiters on c1's file."""
        for i in range(1, 6):
            self.cluster.ctl('lock', '--fh', 'f%d' % i, '--client', 'c%d' % i,
                             '--svid', str(i), '--length', '100', '--state', '3',
                             '--monitored')
        # Waiters: blocking LOCKs whose CLI is killed after they queued, so
        # nothing cancels them.
        for i in (6, 7):
            p = subprocess.Popen(
                [self.cluster.ctl_bin, '--server=' + self.cluster.servers(),
                 'lock', '--fh', 'f1', '--client', 'c%d' % i, '--svid', str(i),
                 '--length', '10', '--state', '3', '--monitored', '--wait',
                 '--wait-timeout', '300s'],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                w = json.loads(self.cluster.ctl('waiters', 'list', '-o',
                                                'json').stdout)
                if any(x['owner']['client_name'] == 'c%d' % i
                       for x in w.get('waiters', [])):
                    break
                time.sleep(0.1)
            p.send_signal(signal.SIGKILL)
            p.wait(10)
        w = json.loads(self.cluster.ctl('waiters', 'list', '-o', 'json').stdout)
        self.assertEqual(len(w['waiters']), 2, w)

    def drill(self, *args):
        r = self.cluster.ctl('drill', 'failover', '--max-wait', '60s', *args,
                             check=False, timeout=DRILL_TIMEOUT_S)
        print('drill failover %s: exit %d\n%s\n%s' % (args, r.returncode,
                                                      r.stdout, r.stderr))
        return r

    def check_passed(self, r):
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        report = json.loads(r.stdout)
        self.assertTrue(report['passed'], report)
        self.assertEqual(report['findings'], [])
        self.assertEqual(report['locks']['before'], 5)
        self.assertEqual(report['locks']['after'], 5)
        self.assertEqual(report['waiters']['before'], 2)
        self.assertEqual(report['waiters']['after'], 2)
        self.assertGreaterEqual(report['clients_checked'], 5)
        self.assertGreater(report['new_leader']['fencing_token'],
                           report['old_leader']['fencing_token'])
        self.assertNotEqual(report['new_leader']['server_id'],
                            report['old_leader']['server_id'])
        self.assertGreater(report['unavailability_ms'], 0)
        self.assertGreater(report['recovery_ms'], 0)
        self.assertLess(report['recovery_ms'], 60000)
        self.assertGreater(report['probes']['total'], 0)
        return report

    def test_kill_nine_failover_drill_reports_zero_loss(self):
        kill = 'kill -9 "$(cat %s/{leader_id}.pid)"' % self.workdir
        report = self.check_passed(self.drill('--kill-command', kill, '-o', 'json'))
        # The new leader's metrics: one leadership change in this process,
        # serving under the new fencing token.
        leader = int(report['new_leader']['server_id'][1:])
        text = urllib.request.urlopen('http://127.0.0.1:%d/metrics' %
                                      self.cluster.metrics_ports[leader],
                                      timeout=10).read().decode()
        self.assertIn('lockwarden_is_leader 1', text)
        self.assertIn('lockwarden_leader_changes_total 1', text)
        self.assertIn('lockwarden_fencing_token %d' %
                      report['new_leader']['fencing_token'], text)
        self.assertIn('lockwarden_locks 5', text)
        self.assertIn('lockwarden_waiters 2', text)
        # The killed server is gone; a second round after it rejoins as a
        # standby (the table output this time).
        self.cluster.restart_dead()
        time.sleep(2)
        r = self.drill('--kill-command', kill)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('PASSED', r.stdout)
        self.assertIn('5 before, 5 after, 0 lost', r.stdout)
        print('unavailability ms: %d' % report['unavailability_ms'])

    def test_step_down_failover_drill_reports_zero_loss(self):
        r = self.drill('-o', 'json', '--reason', 'drill test')
        if r.returncode == 2 and ('single node' in r.stderr or
                                  'UNIMPLEMENTED' in r.stderr):
            self.skipTest('this server build has no StepDown yet: ' + r.stderr)
        self.check_passed(r)

    def test_client_reboot_drill_passes_on_the_replicated_store(self):
        r = self.cluster.ctl('drill', 'client-reboot', '-o', 'json',
                             check=False, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        report = json.loads(r.stdout)
        self.assertTrue(report['passed'], report)
        self.assertEqual(len(report['checks']), 7)
        # The seeded locks of other clients are untouched.
        locks = json.loads(self.cluster.ctl('locks', 'list', '-o',
                                            'json').stdout)['locks']
        self.assertEqual(sorted(l['owner']['client_name'] for l in locks),
                         ['c1', 'c2', 'c3', 'c4', 'c5'])


if __name__ == '__main__':
    unittest.main()
