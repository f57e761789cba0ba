"""Static checks of deploy/k8s: every overlay renders with `kubectl
kustomize`, yamllint is clean, and check_manifests finds no problem.

  bazel test //tests/k8s:manifests_test
"""

import subprocess
import unittest

from tests.k8s import check_manifests
from tests.k8s import k8s_objects as k

YAMLLINT_TIMEOUT_S = 60


class ManifestsTest(unittest.TestCase):

    def test_every_overlay_renders_and_passes_the_checker(self):
        version = k.version()
        for overlay in k.OVERLAYS:
            with self.subTest(overlay=overlay):
                objs = k.render(overlay)
                kinds = {o['kind'] for o in objs}
                self.assertTrue({'StatefulSet', 'Deployment', 'Service',
                                 'ConfigMap', 'NetworkPolicy',
                                 'PodDisruptionBudget'} <= kinds, kinds)
                self.assertEqual(check_manifests.check(objs, version), [])

    def test_base_is_replicated_and_single_node_is_not(self):
        base = k.render('base')
        server = k.find(base, 'StatefulSet', 'lockwarden-server')
        self.assertEqual(server['spec']['replicas'], 3)
        self.assertIn('--store=etcd',
                      server['spec']['template']['spec']['containers'][0]
                      ['args'])
        self.assertEqual(k.find(base, 'StatefulSet', 'etcd')['spec']
                         ['replicas'], 3)
        single = k.render('overlays/single-node')
        server = k.find(single, 'StatefulSet', 'lockwarden-server')
        self.assertEqual(server['spec']['replicas'], 1)
        self.assertIn('--store=rocksdb',
                      server['spec']['template']['spec']['containers'][0]
                      ['args'])
        self.assertEqual([t['metadata']['name'] for t in
                          server['spec']['volumeClaimTemplates']], ['data'])
        self.assertIsNone(k.find(single, 'StatefulSet', 'etcd'))
        self.assertIsNone(k.find(single, 'NetworkPolicy', 'etcd'))

    def test_tls_overlay_serves_tls_and_probes_through_lockwardenctl(self):
        objs = k.render('overlays/tls')
        self.assertIsNotNone(k.find(objs, 'Secret', 'lockwarden-tls'))
        server = k.find(objs, 'StatefulSet', 'lockwarden-server')
        c = server['spec']['template']['spec']['containers'][0]
        self.assertIn('--tls-cert=/etc/lockwarden-tls/tls.crt', c['args'])
        for which in ('readinessProbe', 'livenessProbe'):
            cmd = c[which]['exec']['command']
            self.assertEqual(cmd[0], '/usr/bin/lockwardenctl')
            self.assertIn('--tls-ca=/etc/lockwarden-tls/ca.crt', cmd)
        gw = k.find(objs, 'Deployment', 'nfs-gateway')
        self.assertIn('--tls-ca=/etc/lockwarden-tls/ca.crt',
                      gw['spec']['template']['spec']['initContainers'][0]
                      ['args'])

    def test_yamllint_is_clean(self):
        config = k.workspace_file('tests/k8s/yamllint.yaml')
        res = subprocess.run(['yamllint', '--strict', '-c', config,
                              k.deploy_dir()], capture_output=True,
                             text=True, timeout=YAMLLINT_TIMEOUT_S)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)


if __name__ == '__main__':
    unittest.main()
