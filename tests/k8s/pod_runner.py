"""Runs the pods of rendered manifests as local processes, one network
namespace per pod, so the manifests are tested against the real binaries.

  objs = k8s_objects.render('base')
  with PodCluster(objs, binaries, extra_hosts=['client']) as cluster:
      for pod in cluster.pods_of('StatefulSet', 'etcd'):
          cluster.start_pod(pod)
      cluster.wait_probe(pod, 'etcd', 'readinessProbe')

What is taken from the manifests, unchanged: every container's command,
args and env (fieldRef, configMapKeyRef and literal values, with the
kubelet's $(VAR) expansion), the ConfigMap files mounted into it, its ports,
its probes (run as the kubelet would: TCP connect, gRPC health check, HTTP
GET against the pod IP; exec inside the pod) and the start order of native
sidecars (init containers with restartPolicy Always start first and must
pass their startup probe).

What is substituted, and nothing else:
  binaries   the image's path of a program (by base name) -> a local build
             or the Debian binary (`binaries` argument);
  volumes    every volume gets a directory under the cluster's workdir
             (ConfigMap and Secret volumes filled with their keys); mount
             paths in args, exec probes,
             env values and mounted ConfigMap files are rewritten to them.
  DNS        pod names under their StatefulSet's headless Service
             (<pod>.<service>.<ns>.svc.<domain>) and Services that select
             exactly one pod (<svc>.<ns>.svc.<domain>) resolve through the
             namespace's /etc/hosts to that pod's 198.18.x.y address.
Pod names: <statefulset>-<i>, and <deployment>-<i> for Deployments.
Security contexts and resource limits are not emulated (everything runs as
root here); tests/k8s/check_manifests.py checks those statically.

Thread-safety: none; single-threaded tests.
"""

import base64
import collections
import os
import re
import signal
import time

from tests.harness import netns
from tests.harness import peers
from tests.harness.procs import HarnessError
from tests.k8s import k8s_objects as k

# A probe command (one connect, one health RPC) gets this long.
PROBE_TIMEOUT_S = 5.0
PROBE_POLL_S = 0.2
DEFAULT_CLUSTER_DOMAIN = 'cluster.local'

Pod = collections.namedtuple('Pod', ['name', 'template', 'host', 'volumes'])

_TCP_CONNECT = ('import socket,sys; s=socket.create_connection('
                '(sys.argv[1], int(sys.argv[2])), timeout=%g)' %
                PROBE_TIMEOUT_S)
_HTTP_GET = ('import sys,urllib.request; r=urllib.request.urlopen('
             'sys.argv[1], timeout=%g); sys.exit(0 if 200 <= r.status < 400 '
             'else 1)' % PROBE_TIMEOUT_S)


def pod_names(template):
    """Pod names of a workload: <name>-0 .. <name>-<replicas-1>."""
    w = template.workload
    return ['%s-%d' % (w['metadata']['name'], i)
            for i in range(w['spec'].get('replicas', 1))]


class PodCluster:
    """A Topology with one host per pod of `objs`, plus `extra_hosts`."""

    def __init__(self, objs, binaries, extra_hosts=(), only=None,
                 cluster_domain=DEFAULT_CLUSTER_DOMAIN, ctl=None,
                 external_secrets=None):
        """`binaries` maps a program's base name to the local file to run
        for it; `only` limits the pods to workloads named in it; `ctl` is
        lockwardenctl, used for gRPC probes; `external_secrets` gives the
        Secrets an operator would create ({name: {key: bytes}})."""
        self.external_secrets = dict(external_secrets or {})
        self.objs = objs
        self.binaries = dict(binaries)
        self.cluster_domain = cluster_domain
        self.ctl = ctl
        self.templates = [t for t in k.pod_templates(objs)
                          if only is None or
                          t.workload['metadata']['name'] in only]
        names = [n for t in self.templates for n in pod_names(t)]
        # LW_K8S_KEEP_WORKDIR=1 keeps logs and volumes after a passing run.
        self.topo = netns.Topology(
            names + list(extra_hosts),
            keep_workdir=os.environ.get('LW_K8S_KEEP_WORKDIR') == '1')
        self.pods = {}
        self.processes = {}  # (pod name, container name) -> Process
        self._rewritten = set()  # (pod name, ConfigMap volume) done

    def __enter__(self):
        self.topo.__enter__()
        try:
            for t in self.templates:
                for name in pod_names(t):
                    self.pods[name] = Pod(name, t, self.topo[name],
                                          self._make_volumes(name, t))
            self._map_names()
        except BaseException:
            self.topo.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        return self.topo.__exit__(*exc)

    def __getitem__(self, host):
        return self.topo[host]

    # ---- layout ---------------------------------------------------------

    def namespace(self, template):
        return template.workload['metadata'].get('namespace', 'default')

    def pods_of(self, kind, name):
        return [p for p in self.pods.values()
                if p.template.workload['kind'] == kind and
                p.template.workload['metadata']['name'] == name]

    def _make_volumes(self, pod_name, template):
        """Directory per volume (and volume claim template); ConfigMap
        volumes get their files."""
        root = os.path.join(self.topo.workdir, pod_name, 'volumes')
        vols = {}
        claims = template.workload['spec'].get('volumeClaimTemplates') or []
        for v in (template.spec.get('volumes') or []) + [
                {'name': c['metadata']['name']} for c in claims]:
            d = os.path.join(root, v['name'])
            os.makedirs(d)
            vols[v['name']] = d
            if 'secret' in v:
                secret_name = v['secret']['secretName']
                secret = k.find(self.objs, 'Secret', secret_name)
                if secret is not None:
                    data = secret.get('data') or {}
                elif secret_name in self.external_secrets:
                    data = {key: base64.b64encode(value).decode()
                            for key, value in
                            self.external_secrets[secret_name].items()}
                else:
                    raise HarnessError('%s: no Secret %s' %
                                       (pod_name, secret_name))
                items = v['secret'].get('items') or [
                    {'key': key, 'path': key} for key in data]
                for item in items:
                    with open(os.path.join(d, item['path']), 'wb') as f:
                        f.write(base64.b64decode(data[item['key']]))
            if 'configMap' in v:
                cm = k.find(self.objs, 'ConfigMap', v['configMap']['name'])
                if cm is None:
                    raise HarnessError('%s: no ConfigMap %s' %
                                       (pod_name, v['configMap']['name']))
                data = cm.get('data') or {}
                items = v['configMap'].get('items') or [
                    {'key': key, 'path': key} for key in data]
                for item in items:
                    with open(os.path.join(d, item['path']), 'w') as f:
                        f.write(data[item['key']])
        return vols

    def _map_names(self):
        """Pod and Service DNS names -> pod addresses (every host's
        /etc/hosts)."""
        domain = self.cluster_domain
        for pod in self.pods.values():
            spec = pod.template.workload['spec']
            ns = self.namespace(pod.template)
            if pod.template.workload['kind'] == 'StatefulSet':
                svc = spec.get('serviceName')
                self.topo.set_name('%s.%s.%s.svc.%s' % (pod.name, svc, ns,
                                                        domain),
                                   pod.host.ipv4)
        for svc in k.of_kind(self.objs, 'Service'):
            if svc['spec'].get('clusterIP') == 'None':
                continue
            ns = svc['metadata'].get('namespace', 'default')
            sel = svc['spec'].get('selector')
            chosen = [p for p in self.pods.values()
                      if sel and k.selects(sel, p.template.labels)]
            if len(chosen) == 1:
                self.topo.set_name('%s.%s.svc.%s' % (svc['metadata']['name'],
                                                     ns, domain),
                                   chosen[0].host.ipv4)

    # ---- containers -----------------------------------------------------

    def container(self, pod, name):
        for c in pod.template.containers + pod.template.init_containers:
            if c['name'] == name:
                return c
        raise KeyError('%s has no container %s' % (pod.name, name))

    def env(self, pod, c):
        """The container's environment as the kubelet builds it."""
        env = {}
        ns = self.namespace(pod.template)
        for e in c.get('env') or []:
            if 'value' in e:
                env[e['name']] = k.expand(e['value'], env)
                continue
            ref = e.get('valueFrom') or {}
            if 'fieldRef' in ref:
                field = ref['fieldRef']['fieldPath']
                values = {'metadata.name': pod.name, 'metadata.namespace': ns,
                          'status.podIP': pod.host.ipv4,
                          'spec.nodeName': 'node-' + pod.name}
                if field not in values:
                    raise HarnessError('%s: fieldRef %s not emulated' %
                                       (pod.name, field))
                env[e['name']] = values[field]
            elif 'configMapKeyRef' in ref:
                r = ref['configMapKeyRef']
                cm = k.find(self.objs, 'ConfigMap', r['name'])
                env[e['name']] = (cm.get('data') or {})[r['key']]
            else:
                raise HarnessError('%s: env %s: %s not emulated' %
                                   (pod.name, e['name'], sorted(ref)))
        return env

    def _mounts(self, pod, c):
        """(mountPath, local dir), longest path first."""
        out = [(m['mountPath'], pod.volumes[m['name']])
               for m in c.get('volumeMounts') or []]
        return sorted(out, key=lambda m: -len(m[0]))

    def rewrite_paths(self, pod, c, text):
        """Mount paths in `text` -> the local volume directories."""
        mounts = self._mounts(pod, c)
        if not mounts:
            return text
        # One pass over all mount paths (longest first in the alternation),
        # so a substituted directory is never rewritten again (it may start
        # with another mount path, e.g. /tmp).
        local = dict(mounts)
        pattern = r'(?<![\w./-])(%s)(?=$|[/\s;"\',])' % '|'.join(
            re.escape(path) for path, _ in mounts)
        return re.sub(pattern, lambda m: local[m.group(1)], text)

    def local_path(self, pod, container, path):
        """Where `path` inside a container is on this machine."""
        return self.rewrite_paths(pod, self.container(pod, container), path)

    def _binary(self, path):
        base = os.path.basename(path)
        if base in self.binaries:
            return self.binaries[base]
        if os.path.exists(path):
            return path
        raise HarnessError('no local binary for %s (binaries: %s)' %
                           (path, sorted(self.binaries)))

    def argv(self, pod, c):
        """command + args after $(VAR) expansion, binary and volume paths
        substituted."""
        env = self.env(pod, c)
        words = [k.expand(w, env) for w in
                 list(c.get('command') or []) + list(c.get('args') or [])]
        if not words:
            raise HarnessError('%s/%s: no command (the image entrypoint is '
                               'not emulated)' % (pod.name, c['name']))
        return [self._binary(words[0])] + [self.rewrite_paths(pod, c, w)
                                           for w in words[1:]]

    def _rewrite_config_volumes(self, pod, c):
        """Mount paths inside the ConfigMap files this container mounts
        (e.g. Path = /export in ganesha.conf)."""
        volumes = {v['name']: v
                   for v in pod.template.spec.get('volumes') or []}
        for m in c.get('volumeMounts') or []:
            if 'configMap' not in volumes.get(m['name'], {}):
                continue
            # Once per volume: a second pass (a restarted container) would
            # rewrite the local paths again (they start with /tmp).
            if (pod.name, m['name']) in self._rewritten:
                continue
            self._rewritten.add((pod.name, m['name']))
            d = pod.volumes[m['name']]
            for f in os.listdir(d):
                p = os.path.join(d, f)
                with open(p) as fh:
                    text = fh.read()
                new = self.rewrite_paths(pod, c, text)
                if new != text:
                    with open(p, 'w') as fh:
                        fh.write(new)

    def start_container(self, pod, name):
        c = self.container(pod, name)
        self._rewrite_config_volumes(pod, c)
        # A volume mounted under /run or /var/lib/nfs (the harness host's
        # private directories) also exists there, for programs that use the
        # path without being told (Ganesha's /var/lib/nfs/ganesha).
        for m in c.get('volumeMounts') or []:
            for prefix, local in (('/run/', pod.host.run_dir),
                                  ('/var/lib/nfs/', pod.host.nfs_dir)):
                if m['mountPath'].startswith(prefix):
                    os.makedirs(os.path.join(local,
                                             m['mountPath'][len(prefix):]),
                                exist_ok=True)
        env = {key: self.rewrite_paths(pod, c, v)
               for key, v in self.env(pod, c).items()}
        proc = pod.host.spawn(self.argv(pod, c), name=name, env=env)
        self.processes[(pod.name, name)] = proc
        return proc

    def start_pod(self, pod, timeout=30.0):
        """Native sidecars first (each must pass its startup probe), then
        the containers, as the kubelet starts them."""
        t = pod.template
        for c in t.init_containers:
            raise HarnessError('%s: plain init container %s not emulated' %
                               (pod.name, c['name']))
        for c in t.containers:
            self.start_container(pod, c['name'])
            if c.get('restartPolicy') == 'Always' and c.get('startupProbe'):
                self.wait_probe(pod, c['name'], 'startupProbe', timeout)

    def process(self, pod, container):
        return self.processes[(pod.name, container)]

    def kill(self, pod, container, sig=signal.SIGKILL):
        """Kills a container's process (SIGKILL: a crash)."""
        proc = self.process(pod, container)
        proc.send_signal(sig)
        proc.wait(10)
        return proc

    # ---- probes ---------------------------------------------------------

    def _port(self, c, ref):
        if isinstance(ref, int):
            return ref
        for p in c.get('ports') or []:
            if p.get('name') == ref:
                return p['containerPort']
        raise HarnessError('%s: no port named %s' % (c['name'], ref))

    def probe(self, pod, container, which):
        """Runs one probe of a container as the kubelet would; True if it
        passes."""
        c = self.container(pod, container)
        probe = c.get(which)
        if not probe:
            raise HarnessError('%s/%s has no %s' % (pod.name, container,
                                                    which))
        ip = pod.host.ipv4
        if 'tcpSocket' in probe:
            argv = ['python3', '-c', _TCP_CONNECT, ip,
                    str(self._port(c, probe['tcpSocket']['port']))]
        elif 'httpGet' in probe:
            h = probe['httpGet']
            argv = ['python3', '-c', _HTTP_GET, 'http://%s:%d%s' % (
                ip, self._port(c, h['port']), h.get('path', '/'))]
        elif 'grpc' in probe:
            g = probe['grpc']
            argv = [self.ctl, '--server=%s:%d' % (ip, g['port']),
                    '--timeout=%ds' % PROBE_TIMEOUT_S, 'health']
            if g.get('service'):
                argv.append('--service=' + g['service'])
        elif 'exec' in probe:
            cmd = probe['exec']['command']
            argv = [self._binary(cmd[0])] + [self.rewrite_paths(pod, c, w)
                                             for w in cmd[1:]]
        else:
            raise HarnessError('%s/%s: %s kind not emulated' %
                               (pod.name, container, which))
        res = pod.host.run(argv, timeout=PROBE_TIMEOUT_S + 5, check=False)
        return res.returncode == 0

    def wait_probe(self, pod, container, which, timeout=30.0):
        """Polls a probe until it passes; HarnessError (with the container's
        log) if it does not within `timeout` or the process exits."""
        deadline = time.monotonic() + timeout
        proc = self.processes.get((pod.name, container))
        while True:
            if self.probe(pod, container, which):
                return
            if proc is not None and not proc.alive():
                raise HarnessError('%s/%s exited (%s) before its %s passed; '
                                   'log:\n%s' % (pod.name, container,
                                                 proc.returncode, which,
                                                 proc.log_text()[-3000:]))
            if time.monotonic() > deadline:
                raise HarnessError('%s/%s: %s still failing after %.0fs; '
                                   'log:\n%s' % (pod.name, container, which,
                                                 timeout, proc.log_text()
                                                 [-3000:] if proc else ''))
            time.sleep(PROBE_POLL_S)

    def ready_pods(self, pods, container):
        """The pods whose container's readiness probe passes now."""
        return [p for p in pods if self.probe(p, container, 'readinessProbe')]


def lockwarden_binaries():
    """Local builds for the image's programs (Bazel runfiles or
    bazel-out), and the Debian binaries for the other images."""
    return {
        'lockwarden-server': peers.runfile('server/lockwarden-server'),
        'lockwarden-gateway': peers.runfile('gateway/lockwarden-gateway'),
        'lockwardenctl': peers.runfile('cli/lockwardenctl'),
        'etcd': '/usr/bin/etcd',
        'ganesha.nfsd': '/usr/bin/ganesha.nfsd',
        'rpcinfo': '/usr/bin/rpcinfo',
    }
