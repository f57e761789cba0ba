"""Rendered Kubernetes manifests of deploy/k8s as Python objects.

  objs = k8s_objects.render('base')          # kubectl kustomize
  for pod in k8s_objects.pod_templates(objs):
      for c in pod.containers: ...

`render()` copies deploy/ into a private directory first (Bazel runfiles are
symlinks, which kustomize's "files must be under the root" rule rejects),
then runs `kubectl kustomize` and parses every document with PyYAML.

A PodTemplate is one workload's pod as the kubelet would see it: its
labels, its spec, the containers that run for the pod's whole life (regular
containers and native sidecars, i.e. init containers with restartPolicy
Always) and the plain init containers.

Thread-safety: none needed; plain functions on plain data.
"""

import collections
import os
import re
import shutil
import subprocess
import tempfile

import yaml

# Overlays every test renders: the HA base, the single-node overlay and the
# TLS overlay (rendered with a throwaway test PKI, see make_test_pki).
OVERLAYS = ('base', 'overlays/single-node', 'overlays/tls')
# Secrets the operator creates before applying (kubectl create secret;
# never in git), by name -> the keys pods use (docs/deploy.md).
EXTERNAL_SECRETS = {'lockwarden-admin-token': ('token',)}
# Overlays whose pki/ directory the operator fills (ca.crt, tls.crt, tls.key).
NEEDS_PKI = ('overlays/tls',)
OPENSSL_TIMEOUT_S = 30
# What the servers' certificate must cover (overlays/tls/kustomization.yaml).
TEST_CERT_NAMES = ('*.lockwarden-server-peers.lockwarden.svc.cluster.local',
                   'lockwarden-server.lockwarden.svc.cluster.local',
                   'localhost')
# kubectl kustomize of a few files takes well under a second; this bounds a
# hung kubectl.
RENDER_TIMEOUT_S = 60
WORKLOAD_KINDS = ('Deployment', 'StatefulSet', 'DaemonSet', 'Job')

PodTemplate = collections.namedtuple(
    'PodTemplate', ['workload', 'labels', 'spec', 'containers',
                    'init_containers'])


class RenderError(Exception):
    """kubectl kustomize failed or printed something that is not YAML."""


def workspace_file(rel_path):
    """Absolute path of a source file: from Bazel runfiles under
    `bazel test`, else from the source tree this file lives in."""
    for var in ('TEST_SRCDIR', 'RUNFILES_DIR'):
        root = os.environ.get(var)
        if root:
            p = os.path.join(root, os.environ.get('TEST_WORKSPACE',
                                                  'lockwarden'), rel_path)
            if os.path.exists(p):
                return p
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(os.path.dirname(here)), rel_path)


def deploy_dir():
    return workspace_file('deploy')


def version():
    """deploy/VERSION: the version images are built and pinned with."""
    with open(os.path.join(deploy_dir(), 'VERSION')) as f:
        return f.read().strip()


def test_external_secrets():
    """What an operator would create for EXTERNAL_SECRETS, for tests:
    {name: {key: bytes}} with a fresh random admin token."""
    return {'lockwarden-admin-token': {
        'token': (os.urandom(16).hex() + '\n').encode()}}


def copy_deploy_tree(dest):
    """Copies deploy/ to dest/deploy with symlinks resolved; returns it."""
    out = os.path.join(dest, 'deploy')
    shutil.copytree(deploy_dir(), out, symlinks=False)
    return out


def kubectl():
    """The kubectl to render with ($LW_KUBECTL, else the one on PATH)."""
    return os.environ.get('LW_KUBECTL') or shutil.which('kubectl') or 'kubectl'


def render_dir(path):
    """`kubectl kustomize path` -> list of objects (dicts)."""
    try:
        res = subprocess.run([kubectl(), 'kustomize', path],
                             capture_output=True, text=True,
                             timeout=RENDER_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RenderError('kubectl kustomize %s: %s' % (path, e)) from None
    if res.returncode != 0:
        raise RenderError('kubectl kustomize %s failed (%d): %s' %
                          (path, res.returncode, res.stderr.strip()))
    try:
        docs = [d for d in yaml.safe_load_all(res.stdout) if d is not None]
    except yaml.YAMLError as e:
        raise RenderError('kubectl kustomize %s: bad YAML: %s' %
                          (path, e)) from None
    return docs


def _openssl(args, cwd):
    subprocess.run(['openssl'] + args, cwd=cwd, check=True,
                   capture_output=True, timeout=OPENSSL_TIMEOUT_S)


def make_test_pki(pki_dir):
    """A throwaway CA and a server certificate (TEST_CERT_NAMES, serverAuth
    and clientAuth) in pki_dir as ca.crt, tls.crt, tls.key: what an
    operator puts into overlays/tls/pki. Valid for two days."""
    os.makedirs(pki_dir, exist_ok=True)
    _openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout',
              'ca.key', '-out', 'ca.crt', '-days', '2', '-subj',
              '/CN=lockwarden-test-ca'], pki_dir)
    _openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'tls.key',
              '-out', 'tls.csr', '-subj', '/CN=lockwarden-server'], pki_dir)
    with open(os.path.join(pki_dir, 'ext'), 'w') as f:
        f.write('subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n'
                % ','.join('DNS:' + n for n in TEST_CERT_NAMES))
    _openssl(['x509', '-req', '-in', 'tls.csr', '-CA', 'ca.crt', '-CAkey',
              'ca.key', '-CAcreateserial', '-out', 'tls.crt', '-days', '2',
              '-extfile', 'ext'], pki_dir)
    for f in ('ca.key', 'ca.srl', 'tls.csr', 'ext'):
        if os.path.exists(os.path.join(pki_dir, f)):
            os.remove(os.path.join(pki_dir, f))


def render(overlay):
    """Renders deploy/k8s/<overlay> from a private copy of deploy/ (with a
    throwaway PKI for the overlays in NEEDS_PKI)."""
    with tempfile.TemporaryDirectory(prefix='lw-k8s-') as tmp:
        root = copy_deploy_tree(tmp)
        if overlay in NEEDS_PKI:
            make_test_pki(os.path.join(root, 'k8s', overlay, 'pki'))
        return render_dir(os.path.join(root, 'k8s', overlay))


def key(obj):
    """(kind, namespace, name) of an object."""
    md = obj.get('metadata', {})
    return (obj.get('kind'), md.get('namespace'), md.get('name'))


def find(objs, kind, name):
    """The object of `kind` named `name`, or None."""
    for o in objs:
        if o.get('kind') == kind and o.get('metadata', {}).get('name') == name:
            return o
    return None


def of_kind(objs, kind):
    return [o for o in objs if o.get('kind') == kind]


def pod_templates(objs):
    """A PodTemplate for every workload's pod template."""
    out = []
    for o in objs:
        if o.get('kind') not in WORKLOAD_KINDS:
            continue
        tmpl = o.get('spec', {}).get('template', {})
        spec = tmpl.get('spec', {}) or {}
        inits = spec.get('initContainers', []) or []
        sidecars = [c for c in inits if c.get('restartPolicy') == 'Always']
        plain = [c for c in inits if c.get('restartPolicy') != 'Always']
        out.append(PodTemplate(o, tmpl.get('metadata', {}).get('labels', {})
                               or {}, spec,
                               sidecars + (spec.get('containers', []) or []),
                               plain))
    return out


def selects(selector, labels):
    """True if a label selector (matchLabels/matchExpressions, or a plain
    Service-style map) selects `labels`."""
    if selector is None:
        return False
    if 'matchLabels' in selector or 'matchExpressions' in selector:
        for k, v in (selector.get('matchLabels') or {}).items():
            if labels.get(k) != v:
                return False
        for e in selector.get('matchExpressions') or []:
            op, k, vals = e.get('operator'), e.get('key'), e.get('values', [])
            if op == 'In' and labels.get(k) not in vals:
                return False
            if op == 'NotIn' and labels.get(k) in vals:
                return False
            if op == 'Exists' and k not in labels:
                return False
            if op == 'DoesNotExist' and k in labels:
                return False
        return True
    return all(labels.get(k) == v for k, v in selector.items())


def selected_pods(objs, selector, namespace=None):
    """PodTemplates a selector picks (in `namespace` if given). An empty
    selector ({} in a NetworkPolicy) picks every pod."""
    pods = pod_templates(objs)
    if namespace is not None:
        pods = [p for p in pods
                if p.workload['metadata'].get('namespace') == namespace]
    if selector == {}:
        return pods
    return [p for p in pods if selects(selector, p.labels)]


_VAR_RE = re.compile(r'\$\(([A-Za-z_][A-Za-z0-9_]*)\)')


def var_refs(text):
    """Names of the $(VAR) references the kubelet expands in `text`."""
    return _VAR_RE.findall(text)


def expand(text, env):
    """The kubelet's $(VAR) expansion: defined names are replaced, others
    stay literally (as in Kubernetes); $$ escapes are not used here."""
    return _VAR_RE.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def obj_name(obj):
    """"Kind/name" of an object, for messages."""
    return '%s/%s' % (obj.get('kind'), obj.get('metadata', {}).get('name'))


def pod_name(pod):
    """"Kind/name" of a PodTemplate's workload, for messages."""
    return obj_name(pod.workload)


def container_argv(c):
    """A container's command followed by its args."""
    return list(c.get('command') or []) + list(c.get('args') or [])


def flag_value(c, flag):
    """Value of --flag=VALUE in a container's command+args, or None."""
    for a in container_argv(c):
        if a.startswith(flag + '='):
            return a[len(flag) + 1:]
    return None
