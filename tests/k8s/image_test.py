"""The container image scripts/build-image makes, run under podman.

Opt-in (the image must be built first, which needs the Debian mirror):

  sudo scripts/build-image
  bazel test --test_env=LW_TEST_IMAGE=1 //tests/k8s:image_test

Checks the image as the manifests use it: user 65532, version and revision
labels, no shell, package manager or compiler inside; then, in a test
network namespace (podman --network=host there, so "host" is the test
namespace), lockwarden-server and lockwarden-gateway start from the image
read-only, with every capability dropped and no_new_privs, exactly as the
pod securityContexts say; the gateway binds 111 and 662 as non-root thanks
to the namespace's net.ipv4.ip_unprivileged_port_start=0 (the pod sysctl).
rpcinfo lists NLM and NSM, the gRPC health check answers SERVING (from this
machine's lockwardenctl and from the one in the image), and an NLM LOCK
through the image's gateway is granted.

With all three images built (scripts/build-image --all), the base's etcd
members and a lockwarden-server on them, and the single-node overlay's
pods, run from the images: each container's command, args, env, volume
mounts and securityContext (user, read-only root, capabilities, no_new_privs)
are translated from the rendered manifests into `podman run` options, the
way a kubelet would run them; an NFS client mounts the Ganesha export and
locks a file through the gateway container.
"""

import base64
import os
import resource
import subprocess
import sys
import time
import unittest

from tests.harness import netns
from tests.harness import peers
from tests.harness import procs
from tests.k8s import k8s_objects as k

ENABLED = os.environ.get('LW_TEST_IMAGE') == '1'
REGISTRY = os.environ.get('LW_IMAGE_REGISTRY', 'localhost')
START_TIMEOUT_S = 30.0
PODMAN_TIMEOUT_S = 60.0
# Never in a runtime image.
FORBIDDEN = ('bin/sh', 'usr/bin/sh', 'bin/bash', 'usr/bin/bash', 'bin/dash',
             'usr/bin/dash', 'usr/bin/gcc', 'usr/bin/cc', 'usr/bin/c++',
             'usr/bin/ld', 'usr/bin/apt', 'usr/bin/apt-get', 'usr/bin/dpkg')
PROGRAMS = ('usr/bin/lockwarden-server', 'usr/bin/lockwarden-gateway',
            'usr/bin/lockwardenctl')
NLM_TIMEOUT_S = 20.0


def podman_global_args():
    """crun refuses hosts with hybrid cgroups (v1 controllers plus a
    unified v2 mount); runc runs there. LW_PODMAN_RUNTIME overrides."""
    runtime = os.environ.get('LW_PODMAN_RUNTIME')
    if runtime is None and os.path.ismount('/sys/fs/cgroup/unified'):
        runtime = 'runc'
    return ['--runtime', runtime] if runtime else []


def ulimit_args():
    """podman asks the runtime for its default limits, which a host without
    CAP_SYS_RESOURCE cannot grant: ask for what this process has (podman
    itself caps RLIMIT_NPROC at 32768)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = 32768 if nproc == resource.RLIM_INFINITY else min(nproc, 32768)
    return ['--ulimit', 'nofile=%d:%d' % (nofile, nofile),
            '--ulimit', 'nproc=%d:%d' % (nproc, nproc)]


def podman(*args, timeout=PODMAN_TIMEOUT_S, check=True):
    return procs.run_bounded(['podman'] + podman_global_args() + list(args),
                             timeout, check=check)


@unittest.skipUnless(ENABLED, 'opt-in: build the image (scripts/build-image) '
                     'and set LW_TEST_IMAGE=1')
class ImageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.version = k.version()
        cls.secrets = k.test_external_secrets()
        cls.image = '%s/lockwarden:%s' % (REGISTRY, cls.version)
        res = podman('image', 'exists', cls.image, check=False)
        if res.returncode != 0:
            raise AssertionError('%s not in podman storage: run sudo '
                                 'scripts/build-image' % cls.image)

    def test_image_config_and_contents(self):
        out = podman('image', 'inspect', '--format',
                     '{{.Config.User}} {{index .Config.Labels '
                     '"org.opencontainers.image.version"}} {{index '
                     '.Config.Labels "org.opencontainers.image.revision"}}',
                     self.image).stdout.split()
        self.assertEqual(out[0], '65532')
        self.assertEqual(out[1], self.version)
        self.assertRegex(out[2], r'^[0-9a-f]{40}(-dirty)?$')
        root = podman('image', 'mount', self.image).stdout.strip()
        try:
            for f in PROGRAMS:
                self.assertTrue(os.access(os.path.join(root, f), os.X_OK), f)
            present = [f for f in FORBIDDEN
                       if os.path.lexists(os.path.join(root, f))]
            self.assertEqual(present, [])
            with open(os.path.join(root, 'usr/share/lockwarden/'
                                   'image-manifest.txt')) as f:
                manifest = f.read()
            self.assertIn('libgrpc++1.51', manifest)
            self.assertNotIn('gcc_', manifest.replace('gcc-12-base', ''))
        finally:
            podman('image', 'unmount', self.image, check=False)

    def test_server_and_gateway_run_from_the_image(self):
        with netns.Topology(['node', 'client']) as topo:
            node, client = topo['node'], topo['client']
            # The pod sysctl of nfs-gateway.yaml, for this namespace only.
            procs.run_bounded(self.in_netns(node) + [
                'sysctl', '-q', '-w', 'net.ipv4.ip_unprivileged_port_start=0'],
                10)
            data = os.path.join(node.dir, 'data')
            os.makedirs(data)
            os.chown(data, 65532, 65532)
            names, started = [], []
            try:
                server = self.run_container(
                    node, names, started, 'server', ['-v', '%s:/var/lib/'
                                                  'lockwarden' % data],
                    '/usr/bin/lockwarden-server',
                    ['--listen=0.0.0.0:7420',
                     '--data-dir=/var/lib/lockwarden'])
                server.wait_for_port(7420, 'tcp', START_TIMEOUT_S)
                gateway = self.run_container(
                    node, names, started, 'gateway', [],
                    '/usr/bin/lockwarden-gateway',
                    ['--name=node', '--server=127.0.0.1:7420', '--bind=::'])
                gateway.wait_for_log(r'lockwarden-gateway ready nlm=32803 '
                                     r'nsm=662 portmap=111', START_TIMEOUT_S)

                regs = {(r.program, r.version, r.proto, r.port)
                        for r in peers.rpcinfo_p(client, 'node')}
                for proto in ('tcp', 'udp'):
                    self.assertIn((100021, 4, proto, 32803), regs)
                    self.assertIn((100024, 1, proto, 662), regs)
                ctl = peers.runfile('cli/lockwardenctl')
                res = client.run([ctl, '--server=node:7420', 'health',
                                  '--service=lockwarden.v1.LockService'],
                                 check=False)
                self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
                res = self.podman_in(node, [
                    'run', '--rm', '--network=host', '--read-only',
                    '--cap-drop=ALL', '--security-opt=no-new-privileges'] +
                    ulimit_args() + ['--entrypoint', '/usr/bin/lockwardenctl',
                                     self.image, '--server=127.0.0.1:7420',
                                     'health'])
                self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
                self.assertIn('SERVING', res.stdout)

                replies, _ = peers.nlm_client(client, [
                    '--server', 'node', '--caller', 'client', '--svid', '1',
                    '--fh', '0a0b0c0d', 'lock:excl=1,len=10',
                    'test:svid=2,excl=1,len=10'])
                self.assertEqual([r.status for r in replies],
                                 ['NLM4_GRANTED', 'NLM4_DENIED'])
            finally:
                for name in names:
                    self.podman_in(node, ['rm', '--force', '--time=5', name])
                for proc in started:
                    proc.stop()

    @staticmethod
    def in_netns(host):
        """Prefix that runs a command in `host`'s network namespace only.
        Not `ip netns exec`: it remounts /sys, which hides the cgroup
        mounts podman and runc need; podman's storage and /run stay the
        machine's."""
        return ['nsenter', '--net=/run/netns/' + host.netns]

    def test_single_node_pods_from_images(self):
        images = {'%s/%s:%s' % (REGISTRY, n, self.version)
                  for n in ('lockwarden', 'lockwarden-nfs-ganesha')}
        for image in images:
            if podman('image', 'exists', image, check=False).returncode:
                self.skipTest('%s not built (scripts/build-image --all)' %
                              image)
        objs = k.render('overlays/single-node')
        config = k.find(objs, 'ConfigMap', 'lockwarden-config')['data']
        server_pod = k.find(objs, 'StatefulSet', 'lockwarden-server')
        gw_pod = k.find(objs, 'Deployment', 'nfs-gateway')
        domain, ns = config['cluster-domain'], 'lockwarden'
        server_name = 'lockwarden-server-0.lockwarden-server-peers.%s.svc.%s' \
            % (ns, domain)
        with netns.Topology(['server', 'nfs', 'client']) as topo:
            server, nfs, client = topo['server'], topo['nfs'], topo['client']
            topo.set_name(config['nfs-name'], nfs.ipv4)
            topo.set_name(server_name, server.ipv4)
            # The pod sysctl of nfs-gateway.yaml, for the pod's namespace.
            self.assertEqual(gw_pod['spec']['template']['spec']
                             ['securityContext']['sysctls'][0]['value'], '0')
            procs.run_bounded(self.in_netns(nfs) + [
                'sysctl', '-q', '-w', 'net.ipv4.ip_unprivileged_port_start=0'],
                10)
            names, started = [], []
            t0 = time.monotonic()
            try:
                argv = self.kubelet_argv(objs, server_pod, 'lockwarden-server',
                                         'lockwarden-server-0', server, names)
                proc = self.spawn(server, argv, 'server', started)
                proc.wait_for_port(7420, 'tcp', START_TIMEOUT_S)
                hosts = ['--add-host=%s:%s' % (server_name, server.ipv4)]
                argv = self.kubelet_argv(objs, gw_pod, 'lockwarden-gateway',
                                         'nfs-gateway-0', nfs, names, hosts)
                gw = self.spawn(nfs, argv, 'gateway', started)
                gw.wait_for_log(r'lockwarden-gateway ready', START_TIMEOUT_S)
                argv = self.kubelet_argv(objs, gw_pod, 'nfs-ganesha',
                                         'nfs-gateway-0', nfs, names, hosts)
                ganesha = self.spawn(nfs, argv, 'ganesha', started)
                ganesha.wait_for_port(2049, 'tcp', START_TIMEOUT_S)
                ganesha.wait_for_port(20048, 'udp', START_TIMEOUT_S)
                sys.stderr.write('pods up from the images in %.1fs\n' %
                                 (time.monotonic() - t0))

                regs = {(r.program, r.version, r.proto, r.port) for r in
                        peers.rpcinfo_p(client, config['nfs-name'])}
                sys.stderr.write('rpcinfo -p %s: %s\n' %
                                 (config['nfs-name'], sorted(regs)))
                for proto in ('tcp', 'udp'):
                    self.assertIn((100003, 3, proto, 2049), regs)
                    self.assertIn((100005, 3, proto, 20048), regs)
                    self.assertIn((100021, 4, proto, 32803), regs)
                    self.assertIn((100024, 1, proto, 662), regs)
                # Ganesha's liveness probe, inside its container.
                probe = gw_pod['spec']['template']['spec']['containers'][0][
                    'livenessProbe']['exec']['command']
                res = self.podman_in(nfs, ['exec', names[-1]] + probe)
                self.assertEqual(res.returncode, 0, res.stdout + res.stderr)

                replies, res = peers.nlm_client(client, [
                    '--server', config['nfs-name'], '--caller', 'client',
                    '--svid', '1', '--mount-export', '/export', '--file',
                    'from-image', '--create', 'lock:excl=1,len=10',
                    'test:svid=2,excl=1,len=10'], timeout=NLM_TIMEOUT_S)
                sys.stderr.write(res.stdout)
                self.assertEqual([(r.op, r.status) for r in replies],
                                 [('lock', 'NLM4_GRANTED'),
                                  ('test', 'NLM4_DENIED')])
            finally:
                for name in names:
                    self.podman_in(nfs, ['rm', '--force', '--time=5', name])
                for proc in started:
                    proc.stop()

    def test_ha_etcd_and_server_pods_from_images(self):
        for n in ('lockwarden', 'lockwarden-etcd'):
            image = '%s/%s:%s' % (REGISTRY, n, self.version)
            if podman('image', 'exists', image, check=False).returncode:
                self.skipTest('%s not built (scripts/build-image --all)' %
                              image)
        objs = k.render('base')
        config = k.find(objs, 'ConfigMap', 'lockwarden-config')['data']
        etcd_sts = k.find(objs, 'StatefulSet', 'etcd')
        server_sts = k.find(objs, 'StatefulSet', 'lockwarden-server')
        suffix = '.lockwarden.svc.%s' % config['cluster-domain']
        members = ['etcd-%d' % i for i in range(etcd_sts['spec']['replicas'])]
        with netns.Topology(members + ['server', 'client']) as topo:
            fqdn = {m: '%s.etcd%s' % (m, suffix) for m in members}
            fqdn['server'] = 'lockwarden-server-0.lockwarden-server-peers' + \
                suffix
            hosts = ['--add-host=%s:%s' % (name, topo[h].ipv4)
                     for h, name in fqdn.items()]
            names, started = [], []
            t0 = time.monotonic()
            try:
                for m in members:
                    argv = self.kubelet_argv(objs, etcd_sts, 'etcd', m,
                                             topo[m], names, hosts)
                    self.spawn(topo[m], argv, m, started)
                argv = self.kubelet_argv(objs, server_sts, 'lockwarden-server',
                                         'lockwarden-server-0', topo['server'],
                                         names, hosts)
                server = self.spawn(topo['server'], argv, 'server', started)
                ctl = peers.runfile('cli/lockwardenctl')
                deadline = time.monotonic() + START_TIMEOUT_S
                while True:
                    res = topo['client'].run([
                        ctl, '--server=%s:7420' % topo['server'].ipv4,
                        '--timeout=2s', 'health',
                        '--service=lockwarden.v1.LockService'], check=False)
                    if res.returncode == 0:
                        break
                    if time.monotonic() > deadline or not server.alive():
                        self.fail('the server from the image never led: %s'
                                  '\n%s' % (res.stdout + res.stderr,
                                            server.log_text()[-3000:]))
                    time.sleep(0.5)
                sys.stderr.write('etcd x%d + lockwarden-server (--store=etcd) '
                                 'from the images: leader SERVING after '
                                 '%.1fs\n' % (len(members),
                                               time.monotonic() - t0))
                res = topo['client'].run([
                    ctl, '--server=%s:7420' % topo['server'].ipv4,
                    '--output=json', 'status'])
                self.assertIn('lockwarden-server-0', res.stdout)
            finally:
                for name in names:
                    self.podman_in(topo['client'],
                                   ['rm', '--force', '--time=5', name])
                for proc in started:
                    proc.stop()

    def kubelet_argv(self, objs, workload, container, pod_name, host, names,
                     extra=()):
        """`podman run` for one container of a rendered workload, the way a
        kubelet runs it: command/args with $(VAR)s expanded from its env,
        env, volumes (ConfigMap files written, other volumes empty
        directories), securityContext; in `host`'s network namespace."""
        spec = workload['spec']['template']['spec']
        pod_sc = spec.get('securityContext') or {}
        cs = spec.get('containers', []) + spec.get('initContainers', [])
        c = [x for x in cs if x['name'] == container][0]
        sc = c.get('securityContext') or {}
        env = {}
        for e in c.get('env') or []:
            ref = e.get('valueFrom') or {}
            if 'value' in e:
                env[e['name']] = k.expand(e['value'], env)
            elif 'fieldRef' in ref:
                env[e['name']] = {
                    'metadata.name': pod_name,
                    'metadata.namespace': workload['metadata']['namespace'],
                }[ref['fieldRef']['fieldPath']]
            else:
                r = ref['configMapKeyRef']
                env[e['name']] = k.find(objs, 'ConfigMap',
                                        r['name'])['data'][r['key']]
        words = [k.expand(w, env) for w in c.get('command', []) +
                 c.get('args', [])]
        name = 'lwt-image-%d-%s-%s' % (os.getpid(), pod_name, container)
        names.append(name)
        argv = ['run', '--rm', '--name', name, '--network=host',
                '--hostname', pod_name] + ulimit_args() + list(extra)
        uid = sc.get('runAsUser', pod_sc.get('runAsUser'))
        gid = sc.get('runAsGroup', pod_sc.get('runAsGroup', uid))
        if uid is not None:
            argv.append('--user=%d:%d' % (uid, gid))
        if sc.get('readOnlyRootFilesystem'):
            argv.append('--read-only')
        if sc.get('allowPrivilegeEscalation') is False:
            argv.append('--security-opt=no-new-privileges')
        caps = sc.get('capabilities') or {}
        argv += ['--cap-drop=%s' % x for x in caps.get('drop', [])]
        argv += ['--cap-add=%s' % x for x in caps.get('add', [])]
        for key, value in env.items():
            argv.append('--env=%s=%s' % (key, value))
        volumes = {v['name']: v for v in spec.get('volumes') or []}
        fs_group = pod_sc.get('fsGroup')
        for m in c.get('volumeMounts') or []:
            d = os.path.join(host.dir, 'volumes', container, m['name'])
            os.makedirs(d, exist_ok=True)
            cm = volumes.get(m['name'], {}).get('configMap')
            secret = volumes.get(m['name'], {}).get('secret')
            if secret:
                self.write_secret(objs, secret, d, fs_group)
            elif cm:
                data = k.find(objs, 'ConfigMap', cm['name'])['data']
                items = cm.get('items') or [{'key': x, 'path': x}
                                            for x in data]
                for item in items:
                    with open(os.path.join(d, item['path']), 'w') as f:
                        f.write(data[item['key']])
            elif fs_group is not None:
                os.chown(d, 0, fs_group)
                os.chmod(d, 0o2775)
            argv.append('--volume=%s:%s%s' % (d, m['mountPath'],
                                              ':ro' if m.get('readOnly')
                                              else ''))
        image = c['image']
        return (argv + ['--entrypoint', words[0], image] + words[1:])

    def write_secret(self, objs, secret, d, fs_group):
        """A secret volume as the kubelet writes it: the keys as files,
        mode defaultMode, group fsGroup (the operator's Secrets come from
        k8s_objects.test_external_secrets())."""
        rendered = k.find(objs, 'Secret', secret['secretName'])
        if rendered is not None:
            data = {key: base64.b64decode(v)
                    for key, v in (rendered.get('data') or {}).items()}
        else:
            data = self.secrets[secret['secretName']]
        items = secret.get('items') or [{'key': x, 'path': x} for x in data]
        for item in items:
            path = os.path.join(d, item['path'])
            with open(path, 'wb') as f:
                f.write(data[item['key']])
            os.chmod(path, secret.get('defaultMode', 0o644))
            if fs_group is not None:
                os.chown(path, 0, fs_group)
        os.chmod(d, 0o755)

    def spawn(self, host, podman_args, role, started):
        argv = self.in_netns(host) + ['podman'] + podman_global_args() + \
            podman_args
        log_path = os.path.join(host.dir, 'podman-%s.log' % role)
        with open(log_path, 'ab') as log:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        proc = procs.Process('%s@%s' % (role, host.name), argv, popen,
                             log_path, netns_inode=host.netns_inode)
        started.append(proc)
        return proc

    def podman_in(self, host, args):
        return procs.run_bounded(self.in_netns(host) + ['podman'] +
                                 podman_global_args() + args,
                                 PODMAN_TIMEOUT_S, check=False)

    def run_container(self, host, names, started, role, extra, entrypoint,
                      args):
        """Starts a container of the image as the manifests run it; returns
        a harness Process (podman run in the foreground)."""
        name = 'lwt-image-%d-%s' % (os.getpid(), role)
        names.append(name)
        argv = (self.in_netns(host) + ['podman'] +
                podman_global_args() +
                ['run', '--rm', '--name', name, '--network=host',
                 '--read-only', '--cap-drop=ALL',
                 '--security-opt=no-new-privileges', '--user=65532:65532'] +
                ulimit_args() + extra + ['--entrypoint', entrypoint,
                                         self.image] + args)
        log_path = os.path.join(host.dir, 'podman-%s.log' % role)
        with open(log_path, 'ab') as log:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        proc = procs.Process('%s@%s' % (role, host.name), argv, popen,
                             log_path, netns_inode=host.netns_inode)
        started.append(proc)
        return proc


if __name__ == '__main__':
    unittest.main()
