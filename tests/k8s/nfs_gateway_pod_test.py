"""The NFS gateway pod for real, from the single-node overlay.

One namespace holds the pod's two containers exactly as the manifests run
them: NFS-Ganesha (NFSv3 + MOUNT, VFS export, its NLM disabled) and
lockwarden-gateway (NLM, NSM and the portmapper). A lockwarden-server pod
(RocksDB, from the overlay) and an NFS client are namespaces of their own.

Checked:
  - `rpcinfo -p` from the client lists NFS and MOUNT on Ganesha's ports and
    NLM (1, 3, 4) and NSM on lockwarden's, and the listening sockets belong
    to those processes: Ganesha serves no NLM.
  - a libnfs client mounts the export, creates a file and locks it through
    the gateway; a second owner is denied; the server holds the lock.
  - the server's and the gateway's Prometheus endpoints answer on the
    ports the manifests declare.
  - the design note in nfs-gateway.yaml: after a gateway restart Ganesha's
    registrations are gone and Ganesha's liveness probe fails; restarting
    Ganesha (what the kubelet then does) registers them again. The lock is
    held throughout.

  bazel test //tests/k8s:nfs_gateway_pod_test      # ~15 s
"""

import json
import os
import signal
import unittest

from tests.harness import peers
from tests.k8s import k8s_objects as k
from tests.k8s import pod_runner

START_TIMEOUT_S = 40.0
NLM_TIMEOUT_S = 20.0
NFS, MOUNT, NLM, NSM, PORTMAP = 100003, 100005, 100021, 100024, 100000
SCRAPE = ('import sys, urllib.request; '
          'print(urllib.request.urlopen(sys.argv[1], timeout=5).read()'
          '.decode())')


def listening_ports(pid):
    """{(proto, port)} of sockets process `pid` listens on (TCP LISTEN or
    any bound UDP socket), from its fds and its namespace's /proc/net."""
    inodes = set()
    for fd in os.listdir('/proc/%d/fd' % pid):
        try:
            target = os.readlink('/proc/%d/fd/%s' % (pid, fd))
        except OSError:
            continue
        if target.startswith('socket:['):
            inodes.add(target[8:-1])
    ports = set()
    for proto in ('tcp', 'tcp6', 'udp', 'udp6'):
        with open('/proc/%d/net/%s' % (pid, proto)) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[9] not in inodes:
                    continue
                if proto.startswith('tcp') and fields[3] != '0A':
                    continue
                ports.add((proto[:3], int(fields[1].rsplit(':', 1)[1], 16)))
    return ports


class NfsGatewayPodTest(unittest.TestCase):

    def test_ganesha_and_gateway_share_the_pod(self):
        objs = k.render('overlays/single-node')
        config = k.find(objs, 'ConfigMap', 'lockwarden-config')['data']
        bins = pod_runner.lockwarden_binaries()
        with pod_runner.PodCluster(objs, bins, extra_hosts=['client'],
                                   cluster_domain=config['cluster-domain'],
                                   ctl=bins['lockwardenctl'],
                                   external_secrets=k.test_external_secrets()
                                   ) as cluster:
            [server] = cluster.pods_of('StatefulSet', 'lockwarden-server')
            [gw] = cluster.pods_of('Deployment', 'nfs-gateway')
            client = cluster['client']
            cluster.start_pod(server)
            for which in ('readinessProbe', 'livenessProbe'):
                cluster.wait_probe(server, 'lockwarden-server', which,
                                   START_TIMEOUT_S)
            cluster.start_pod(gw, START_TIMEOUT_S)
            self.wait_pod_probes(cluster, gw)

            name = config['nfs-name']
            regs = {(r.program, r.version, r.proto, r.port)
                    for r in peers.rpcinfo_p(client, name)}
            for proto in ('tcp', 'udp'):
                self.assertIn((NFS, 3, proto, 2049), regs)
                self.assertIn((MOUNT, 3, proto, 20048), regs)
                for vers in (1, 3, 4):
                    self.assertIn((NLM, vers, proto, 32803), regs)
                self.assertIn((NSM, 1, proto, 662), regs)
                self.assertIn((PORTMAP, 2, proto, 111), regs)
            self.assertEqual({r[3] for r in regs if r[0] == NLM}, {32803})

            ganesha = listening_ports(cluster.process(gw, 'nfs-ganesha').pid)
            gateway = listening_ports(
                cluster.process(gw, 'lockwarden-gateway').pid)
            for proto in ('tcp', 'udp'):
                self.assertTrue({(proto, 2049), (proto, 20048)} <= ganesha,
                                ganesha)
                self.assertTrue({(proto, 32803), (proto, 662), (proto, 111)}
                                <= gateway, gateway)
            self.assertFalse({p for _, p in ganesha} & {32803, 662, 111},
                             ganesha)

            # Both metrics endpoints the manifests declare answer.
            for pod, container, prefix in (
                    (server, 'lockwarden-server', 'lockwarden_'),
                    (gw, 'lockwarden-gateway', 'lockwarden_gateway_')):
                port = [p['containerPort'] for p in cluster.container(
                    pod, container)['ports'] if p['name'] == 'metrics'][0]
                res = client.run(['python3', '-c', SCRAPE, 'http://%s:%d/'
                                  'metrics' % (pod.host.ipv4, port)])
                self.assertIn(prefix, res.stdout)

            export = cluster.local_path(gw, 'nfs-ganesha', '/export')
            replies, res = peers.nlm_client(client, [
                '--server', name, '--caller', 'client', '--svid', '1',
                '--mount-export', export, '--file', 'data', '--create',
                'lock:excl=1,offset=0,len=10',
                'test:svid=2,excl=1,offset=0,len=10'], timeout=NLM_TIMEOUT_S)
            self.assertEqual([(r.op, r.status) for r in replies],
                             [('lock', 'NLM4_GRANTED'),
                              ('test', 'NLM4_DENIED')], res.stdout)
            self.assertTrue(os.path.isfile(os.path.join(export, 'data')))
            self.assertEqual(self.server_lock_count(cluster, server), 1)

            # Gateway restart: Ganesha's portmapper registrations are gone,
            # its liveness probe says so; a Ganesha restart fixes it.
            killed = cluster.kill(gw, 'lockwarden-gateway', signal.SIGKILL)
            gateway_c = cluster.container(gw, 'lockwarden-gateway')
            cluster.start_container(gw, 'lockwarden-gateway')
            cluster.wait_probe(gw, 'lockwarden-gateway', 'startupProbe',
                               START_TIMEOUT_S)
            self.assertTrue(gateway_c.get('restartPolicy') == 'Always')
            self.assertFalse(cluster.probe(gw, 'nfs-ganesha',
                                           'livenessProbe'))
            cluster.process(gw, 'nfs-ganesha').stop()
            cluster.start_container(gw, 'nfs-ganesha')
            self.wait_pod_probes(cluster, gw)
            replies, res = peers.nlm_client(client, [
                '--server', name, '--caller', 'client', '--svid', '2',
                '--mount-export', export, '--file', 'data',
                'test:excl=1,offset=0,len=10'], timeout=NLM_TIMEOUT_S)
            self.assertEqual([(r.op, r.status) for r in replies],
                             [('test', 'NLM4_DENIED')], res.stdout)
            self.assertEqual(self.server_lock_count(cluster, server), 1)
            self.assertEqual(cluster.topo.crashed(), [killed])

    def wait_pod_probes(self, cluster, pod):
        for c in pod.template.containers:
            for which in ('readinessProbe', 'livenessProbe'):
                cluster.wait_probe(pod, c['name'], which, START_TIMEOUT_S)

    def server_lock_count(self, cluster, server):
        res = cluster['client'].run([
            cluster.ctl, '--server=%s:7420' % server.host.ipv4,
            '--output=json', 'locks', 'list'], timeout=10)
        return len(json.loads(res.stdout).get('locks', []))


if __name__ == '__main__':
    unittest.main()
