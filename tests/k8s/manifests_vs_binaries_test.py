"""The HA manifests (deploy/k8s/base) run against the real binaries.

Every pod of the rendered base becomes a network namespace (etcd-0..2,
lockwarden-server-0..2, nfs-gateway-0) plus an NFS client namespace; each
container runs with exactly its manifest's command, args, env and mounted
ConfigMap files (tests/k8s/pod_runner.py says what is substituted: binary
paths and volume directories, nothing else). So a flag a binary does not
accept, a port that does not match, a DNS name nobody serves or a probe that
cannot pass fails here.

The same for overlays/tls (TLS on the gRPC port, exec probes through
lockwardenctl, a throwaway PKI). Then, through each topology: the client
mounts the export (MOUNT + NFS from NFS-Ganesha) and takes an NLM lock
through the gateway sidecar; the lock-service leader is killed (SIGKILL); a
standby takes over and the lock is still held: another owner is denied and
sees the holder. Last, `lockwardenctl drill failover` (docs/deploy.md) runs
against the servers' pod names and finds nothing lost.

  bazel test //tests/k8s:manifests_vs_binaries_test     # ~20 s
"""

import sys
import time
import unittest

from tests.harness import peers
from tests.k8s import k8s_objects as k
from tests.k8s import pod_runner

# etcd members need each other to become ready; a few seconds here.
ETCD_READY_TIMEOUT_S = 40.0
# A leader: elected, state recovered, LockService SERVING.
LEADER_TIMEOUT_S = 40.0
# Lease 5 s (config.yaml) bounds the takeover; standbys usually depose a
# dead leader sooner (not with TLS: overlays/tls/kustomization.yaml).
TAKEOVER_TIMEOUT_S = 30.0
GATEWAY_POD_TIMEOUT_S = 40.0
NLM_TIMEOUT_S = 20.0
# lockwardenctl drill failover: --max-wait=30s plus its snapshots.
DRILL_TIMEOUT_S = 60.0


class ManifestsVsBinariesTest(unittest.TestCase):

    def phase(self, what):
        sys.stderr.write('%6.1fs %s\n' % (time.monotonic() - self.start, what))

    def test_lock_through_gateway_survives_leader_kill(self):
        self.run_failover('base')

    def test_tls_overlay_lock_survives_leader_kill(self):
        # TLS on the gRPC port, exec probes through lockwardenctl, the
        # gateway verifying the servers' certificate (a throwaway PKI).
        self.run_failover('overlays/tls')

    def run_failover(self, overlay):
        self.start = time.monotonic()
        self.phase('overlay %s' % overlay)
        objs = k.render(overlay)
        config = k.find(objs, 'ConfigMap', 'lockwarden-config')['data']
        bins = pod_runner.lockwarden_binaries()
        secrets = k.test_external_secrets()
        token = secrets['lockwarden-admin-token']['token'].decode().strip()
        with pod_runner.PodCluster(objs, bins, extra_hosts=['client'],
                                   cluster_domain=config['cluster-domain'],
                                   ctl=bins['lockwardenctl'],
                                   external_secrets=secrets) as cluster:
            etcd = cluster.pods_of('StatefulSet', 'etcd')
            servers = cluster.pods_of('StatefulSet', 'lockwarden-server')
            [gateway] = cluster.pods_of('Deployment', 'nfs-gateway')
            self.assertEqual((len(etcd), len(servers)), (3, 3))

            for pod in etcd:
                cluster.start_pod(pod)
            for pod in etcd:
                cluster.wait_probe(pod, 'etcd', 'readinessProbe',
                                   ETCD_READY_TIMEOUT_S)
                self.assertTrue(cluster.probe(pod, 'etcd', 'livenessProbe'))

            self.phase('etcd members ready')
            for pod in servers:
                cluster.start_pod(pod)
            leader = self.wait_for_one_leader(cluster, servers, None,
                                              LEADER_TIMEOUT_S)
            for pod in servers:  # standbys are alive, just not ready
                self.assertTrue(cluster.probe(pod, 'lockwarden-server',
                                              'livenessProbe'), pod.name)

            self.phase('leader %s ready, standbys alive' % leader.name)
            cluster.start_pod(gateway, GATEWAY_POD_TIMEOUT_S)
            for c in ('lockwarden-gateway', 'nfs-ganesha'):
                for which in ('readinessProbe', 'livenessProbe'):
                    cluster.wait_probe(gateway, c, which,
                                       GATEWAY_POD_TIMEOUT_S)

            self.phase('gateway pod ready and live')
            nfs_name = config['nfs-name']
            export = cluster.local_path(gateway, 'nfs-ganesha', '/export')
            client = cluster['client']
            replies, _ = peers.nlm_client(client, [
                '--server', nfs_name, '--caller', 'client', '--svid', '1',
                '--mount-export', export, '--file', 'locked', '--create',
                'lock:excl=1,offset=0,len=100',
                'test:svid=2,excl=1,offset=0,len=100'],
                timeout=NLM_TIMEOUT_S)
            self.assertEqual([(r.op, r.status) for r in replies],
                             [('lock', 'NLM4_GRANTED'),
                              ('test', 'NLM4_DENIED')], replies)

            self.phase('lock granted through the gateway')
            cluster.kill(leader, 'lockwarden-server')
            new_leader = self.wait_for_one_leader(
                cluster, [p for p in servers if p is not leader], leader,
                TAKEOVER_TIMEOUT_S)
            self.assertIsNot(new_leader, leader)
            self.phase('leader killed; %s took over' % new_leader.name)

            replies, _ = peers.nlm_client(client, [
                '--server', nfs_name, '--caller', 'client', '--svid', '2',
                '--mount-export', export, '--file', 'locked',
                'test:excl=1,offset=0,len=100',
                'lock:excl=1,offset=0,len=100',
                'unlock:svid=1,offset=0,len=100',
                'lock:excl=1,offset=0,len=100'], timeout=NLM_TIMEOUT_S)
            self.assertEqual([(r.op, r.status) for r in replies],
                             [('test', 'NLM4_DENIED'),
                              ('lock', 'NLM4_DENIED'),
                              ('unlock', 'NLM4_GRANTED'),
                              ('lock', 'NLM4_GRANTED')], replies)
            self.assertIn('svid:1', replies[0].detail)

            # The StatefulSet controller recreates the killed pod: it comes
            # back as a standby (alive, not Ready).
            killed = cluster.process(leader, 'lockwarden-server')
            cluster.start_container(leader, 'lockwarden-server')
            cluster.wait_probe(leader, 'lockwarden-server', 'livenessProbe',
                               LEADER_TIMEOUT_S)
            self.assertFalse(cluster.probe(leader, 'lockwarden-server',
                                           'readinessProbe'))
            self.phase('killed pod back as a standby')

            # docs/deploy.md's drill, as an admin pod runs it: every server
            # by its pod name, the admin token of Secret
            # lockwarden-admin-token; StepDown, then nothing may change.
            domain = config['cluster-domain']
            argv = [bins['lockwardenctl'], '--server=' + ','.join(
                '%s.%s.lockwarden.svc.%s:7420' % (
                    p.name, p.template.workload['spec']['serviceName'],
                    domain) for p in servers)]
            if overlay in k.NEEDS_PKI:
                argv.append('--tls-ca=' + cluster.local_path(
                    new_leader, 'lockwarden-server',
                    '/etc/lockwarden-tls/ca.crt'))
            res = client.run(argv + ['drill', 'failover', '--settle=3s',
                                     '--max-wait=30s'],
                             timeout=DRILL_TIMEOUT_S, check=False,
                             env={'LOCKWARDEN_TOKEN': token})
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            self.phase('lockwardenctl drill failover passed')
            self.assertEqual(cluster.topo.crashed(), [killed])

    def wait_for_one_leader(self, cluster, servers, dead, timeout):
        """Waits until exactly one of `servers` is Ready (the leader's
        LockService is SERVING); returns that pod."""
        deadline = time.monotonic() + timeout
        while True:
            ready = cluster.ready_pods(servers, 'lockwarden-server')
            if len(ready) == 1:
                return ready[0]
            self.assertLessEqual(len(ready), 1,
                                 'two leaders: %s' % [p.name for p in ready])
            alive = [p for p in servers if cluster.process(
                p, 'lockwarden-server').alive()]
            if time.monotonic() > deadline or not alive:
                logs = '\n'.join(
                    '%s:\n%s' % (p.name, cluster.process(
                        p, 'lockwarden-server').log_text()[-1500:])
                    for p in servers)
                self.fail('no leader among %s after %.0fs (dead: %s)\n%s' %
                          ([p.name for p in servers], timeout,
                           dead.name if dead else None, logs))
            time.sleep(0.2)


if __name__ == '__main__':
    unittest.main()
