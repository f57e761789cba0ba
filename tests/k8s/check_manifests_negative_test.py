"""The checker must catch what breaks in production: each case mutates the
rendered manifests the way a careless edit would, and check_manifests must
report it (and the unmutated manifests must stay clean, so every report is
caused by the mutation).

  bazel test //tests/k8s:check_manifests_negative_test
"""

import copy
import unittest

from tests.k8s import check_manifests
from tests.k8s import k8s_objects as k


def _pod(objs, kind, name):
    return k.find(objs, kind, name)['spec']['template']


def _container(objs, kind, name, container):
    spec = _pod(objs, kind, name)['spec']
    for c in spec.get('containers', []) + spec.get('initContainers', []):
        if c['name'] == container:
            return c
    raise KeyError(container)


def _server(objs):
    return _container(objs, 'StatefulSet', 'lockwarden-server',
                      'lockwarden-server')


def _gateway(objs):
    return _container(objs, 'Deployment', 'nfs-gateway', 'lockwarden-gateway')


def _ganesha(objs):
    return _container(objs, 'Deployment', 'nfs-gateway', 'nfs-ganesha')


def _etcd(objs):
    return _container(objs, 'StatefulSet', 'etcd', 'etcd')


def _set_arg(c, flag, value):
    c['args'] = [a for a in c['args'] if not a.startswith(flag + '=')]
    if value is not None:
        c['args'].append('%s=%s' % (flag, value))


# (name, mutation, text the report must contain)
MUTATIONS = [
    ('pod label typo',
     lambda o: _pod(o, 'Deployment', 'nfs-gateway')['metadata']['labels']
     .update({'app.kubernetes.io/name': 'nfs-gatway'}),
     'does not match its pod labels'),
    ('service selects nothing',
     lambda o: k.find(o, 'Service', 'lockwarden-server')['spec']['selector']
     .update({'app.kubernetes.io/name': 'lockwarden'}),
     'selects no pod'),
    ('service targetPort not on the container',
     lambda o: k.find(o, 'Service', 'nfs')['spec']['ports'][4]
     .update({'targetPort': 'nlm'}),
     "targetPort 'nlm'/TCP is not a container port"),
    ('service UDP port only declared as TCP',
     lambda o: _gateway(o).update(ports=[p for p in _gateway(o)['ports']
                                         if p['name'] != 'portmap-udp']),
     "targetPort 'portmap-udp'/UDP"),
    ('no readiness probe',
     lambda o: _server(o).pop('readinessProbe'), 'no readinessProbe'),
    ('no liveness probe on the sidecar',
     lambda o: _gateway(o).pop('livenessProbe'), 'no livenessProbe'),
    ('probe on an undeclared port',
     lambda o: _ganesha(o)['readinessProbe']['tcpSocket']
     .update({'port': 'nfs'}), "readinessProbe port 'nfs'"),
    ('readiness not leadership-aware',
     lambda o: _server(o)['readinessProbe']['grpc'].pop('service'),
     'leader only'),
    ('no memory limit',
     lambda o: _etcd(o)['resources'].pop('limits'),
     'no resources.limits.memory'),
    ('privilege escalation',
     lambda o: _server(o)['securityContext']
     .update({'allowPrivilegeEscalation': True}),
     'allowPrivilegeEscalation must be false'),
    ('writable root filesystem',
     lambda o: _gateway(o)['securityContext']
     .pop('readOnlyRootFilesystem'), 'readOnlyRootFilesystem'),
    ('capability added to the gateway',
     lambda o: _gateway(o)['securityContext']['capabilities']
     .update({'add': ['NET_BIND_SERVICE']}),
     "adds capabilities ['NET_BIND_SERVICE']"),
    ('Ganesha gets more than its allowance',
     lambda o: _ganesha(o)['securityContext']['capabilities']['add']
     .append('SYS_ADMIN'), "adds capabilities ['SYS_ADMIN']"),
    ('capabilities not dropped',
     lambda o: _etcd(o)['securityContext'].pop('capabilities'),
     'capabilities.drop must contain ALL'),
    ('server as root',
     lambda o: _server(o)['securityContext'].update(
         {'runAsNonRoot': False, 'runAsUser': 0}), 'runAsNonRoot'),
    ('gateway loses the unprivileged-port sysctl',
     lambda o: _pod(o, 'Deployment', 'nfs-gateway')['spec']
     ['securityContext'].pop('sysctls'),
     'net.ipv4.ip_unprivileged_port_start'),
    ('service account token mounted',
     lambda o: _pod(o, 'StatefulSet', 'etcd')['spec']
     .update({'automountServiceAccountToken': True}),
     'automountServiceAccountToken must be false'),
    ('unknown ServiceAccount',
     lambda o: _pod(o, 'StatefulSet', 'etcd')['spec']
     .update({'serviceAccountName': 'default'}), "serviceAccountName"),
    ('host network',
     lambda o: _pod(o, 'Deployment', 'nfs-gateway')['spec']
     .update({'hostNetwork': True}), 'hostNetwork'),
    ('etcd scaled without --initial-cluster',
     lambda o: k.find(o, 'StatefulSet', 'etcd')['spec']
     .update({'replicas': 5}), '--initial-cluster members'),
    ('etcd member URL on the wrong service',
     lambda o: _set_arg(_etcd(o), '--initial-cluster',
                        check_manifests._flag(_etcd(o), '--initial-cluster')
                        .replace('.etcd.', '.etcd-peers.', 1)),
     'expected http://etcd-0.etcd.'),
    ('etcd headless service gets a cluster IP',
     lambda o: k.find(o, 'Service', 'etcd')['spec'].pop('clusterIP'),
     'must be headless'),
    ('etcd starts ordered',
     lambda o: k.find(o, 'StatefulSet', 'etcd')['spec']
     .pop('podManagementPolicy'), 'podManagementPolicy must be Parallel'),
    ('server misses an etcd member',
     lambda o: _set_arg(_server(o), '--etcd-endpoints', 'http://etcd-0.etcd'
                        '.$(POD_NAMESPACE).svc.$(CLUSTER_DOMAIN):2379'),
     '--etcd-endpoints='),
    ('gateway misses a server instance',
     lambda o: _set_arg(_gateway(o), '--server', 'lockwarden-server:7420'),
     'expected every server instance'),
    ('server rolling update would stall on the first standby',
     lambda o: k.find(o, 'StatefulSet', 'lockwarden-server')['spec']
     .update({'updateStrategy': {'type': 'RollingUpdate'}}),
     'updateStrategy must be OnDelete'),
    ('gateway.conf moves NLM off the published port',
     lambda o: k.find(o, 'ConfigMap', 'lockwarden-config')['data'].update(
         {'gateway.conf': k.find(o, 'ConfigMap', 'lockwarden-config')['data']
          ['gateway.conf'].replace('nlm-port = 32803', 'nlm-port = 4045')}),
     'nlm-port = 4045 but container port nlm-tcp'),
    ('Ganesha NLM turned back on',
     lambda o: k.find(o, 'ConfigMap', 'nfs-ganesha-config')['data'].update(
         {'ganesha.conf': k.find(o, 'ConfigMap', 'nfs-ganesha-config')['data']
          ['ganesha.conf'].replace('Enable_NLM = false',
                                   'Enable_NLM = true')}),
     'Enable_NLM = false'),
    ('Service nfs loses UDP for NSM',
     lambda o: k.find(o, 'Service', 'nfs')['spec'].update(
         ports=[p for p in k.find(o, 'Service', 'nfs')['spec']['ports']
                if p['name'] != 'nsm-udp']),
     'Service/nfs: no port 662/UDP'),
    ('PDB selects nothing',
     lambda o: k.find(o, 'PodDisruptionBudget', 'etcd')['spec']['selector']
     ['matchLabels'].update({'app.kubernetes.io/name': 'etc'}),
     'selector selects no pod'),
    ('etcd PDB allows two down',
     lambda o: k.find(o, 'PodDisruptionBudget', 'etcd')['spec']
     .update({'maxUnavailable': 2}), 'maxUnavailable 1'),
    ('no anti-affinity',
     lambda o: _pod(o, 'StatefulSet', 'lockwarden-server')['spec']
     .pop('affinity'), 'anti-affinity'),
    ('network policy on a missing port name',
     lambda o: k.find(o, 'NetworkPolicy', 'lockwarden-server')['spec']
     ['ingress'][0]['ports'][0].update({'port': 'gprc'}),
     "port 'gprc'/TCP is not a port"),
    ('network policy selects nothing',
     lambda o: k.find(o, 'NetworkPolicy', 'etcd')['spec']['podSelector']
     ['matchLabels'].update({'app.kubernetes.io/name': 'etcd-0'}),
     'podSelector selects no pod'),
    ('ConfigMap key typo',
     lambda o: _gateway(o)['env'][0]['valueFrom']['configMapKeyRef']
     .update({'key': 'nfsname'}), 'has no key nfsname'),
    ('undefined $(VAR) in args',
     lambda o: _server(o)['args'].append('--server-id=$(HOSTNAME)'),
     '$(HOSTNAME)'),
    ('ConfigMap volume of a missing ConfigMap',
     lambda o: k.find(o, 'ConfigMap', 'nfs-ganesha-config')['metadata']
     .update({'name': 'ganesha-config'}), 'no ConfigMap nfs-ganesha-config'),
    ('Secret nobody creates',
     lambda o: [v for v in _pod(o, 'StatefulSet', 'lockwarden-server')
                ['spec']['volumes'] if v['name'] == 'admin-token'][0]
     ['secret'].update({'secretName': 'admin-token'}),
     'no Secret admin-token'),
    ('volume mount without a volume',
     lambda o: _ganesha(o)['volumeMounts'].append(
         {'name': 'cache', 'mountPath': '/var/cache'}),
     'volumeMount cache has no volume'),
    ('image on latest',
     lambda o: _server(o).update(image='localhost/lockwarden:latest'),
     'not pinned'),
    ('image without tag',
     lambda o: _etcd(o).update(image='quay.io/coreos/etcd'),
     'no tag or digest'),
    ('own image tag differs from deploy/VERSION',
     lambda o: _gateway(o).update(image='localhost/lockwarden:0.0.9'),
     'deploy/VERSION'),
    ('version string differs from deploy/VERSION',
     lambda o: _set_arg(_server(o), '--version-string', 'dev'),
     '--version-string=dev'),
]


class CheckManifestsNegativeTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.version = k.version()
        cls.base = k.render('base')

    def test_unmutated_base_is_clean(self):
        self.assertEqual(check_manifests.check(self.base, self.version), [])

    def test_every_mutation_is_reported(self):
        for name, mutate, expected in MUTATIONS:
            with self.subTest(mutation=name):
                objs = copy.deepcopy(self.base)
                mutate(objs)
                problems = check_manifests.check(objs, self.version)
                self.assertTrue(any(expected in p for p in problems),
                                '%s: expected a report containing %r, got %s'
                                % (name, expected, problems))

    def test_digest_pins_are_accepted(self):
        objs = copy.deepcopy(self.base)
        _etcd(objs)['image'] = ('registry.example/etcd@sha256:' + 'ab' * 32)
        self.assertEqual(check_manifests.check(objs, self.version), [])


if __name__ == '__main__':
    unittest.main()
