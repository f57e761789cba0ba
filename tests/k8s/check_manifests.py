"""Checks the rendered deploy/k8s manifests for what breaks in production.

  python3 -m tests.k8s.check_manifests   # every overlay; exit 1 on problems
  problems = check(objs, version)                  # from a test

Each rule returns sentences naming the object and what is wrong; `check()`
runs them all. The rules, and why:

  selectors     a workload's selector matches its own pod labels; every
                Service, PDB and NetworkPolicy selects at least one pod
                (a typo there fails silently in a cluster: no endpoints,
                no protection).
  ports         every Service targetPort and every probe port names (or
                numbers) a port of a container in the selected pods, with
                the same protocol; NetworkPolicy named ports likewise.
  containers    every long-running container has readiness and liveness
                probes, cpu and memory requests and a memory limit, and a
                restrictive securityContext: no privilege escalation,
                read-only root filesystem, ALL capabilities dropped, only
                the capabilities listed in ALLOWED_CAPABILITIES added back,
                non-root unless listed in ROOT_CONTAINERS, never privileged.
  pods          no host namespaces, RuntimeDefault seccomp, no service
                account token, a ServiceAccount that exists; a non-root
                container listening below 1024 needs the pod sysctl
                net.ipv4.ip_unprivileged_port_start (capabilities do not
                reach a non-root process under no_new_privs).
  references    ConfigMap and Secret keys, volumes, PVCs and $(VAR)s in
                args exist (the kubelet leaves an unknown $(VAR) as
                literal text); Secrets the operator creates are listed in
                k8s_objects.EXTERNAL_SECRETS.
  etcd, lockwarden, NFS ports
                see check_app.py.
  images        pinned: an explicit version tag (never "latest") or a
                sha256 digest; images from scripts/build-image carry the
                tag deploy/VERSION.

Thread-safety: none needed; pure functions over parsed objects.
"""

import re
import sys

from tests.k8s import check_app
from tests.k8s import k8s_objects as k

# Containers that must run as root, and why: an NFS server acts on files
# as its clients' users (setfsuid) and opens files by handle.
ROOT_CONTAINERS = {'nfs-ganesha'}
# The only capabilities added back after drop ALL (see nfs-gateway.yaml).
ALLOWED_CAPABILITIES = {
    'nfs-ganesha': {'DAC_READ_SEARCH', 'DAC_OVERRIDE', 'FOWNER', 'CHOWN',
                    'FSETID', 'SETUID', 'SETGID'},
}
# Images scripts/build-image makes; they carry deploy/VERSION as tag.
OWN_IMAGES = ('lockwarden', 'lockwarden-etcd', 'lockwarden-nfs-ganesha')
UNPRIVILEGED_PORT_SYSCTL = 'net.ipv4.ip_unprivileged_port_start'
_VERSION_TAG_RE = re.compile(r'^v?\d+\.\d+(\.\d+)?([-+._][0-9A-Za-z.+-]+)?$')
_DIGEST_RE = re.compile(r'@sha256:[0-9a-f]{64}$')


_name = k.obj_name
_pod_name = k.pod_name
# Used by check_manifests_negative_test.
_flag = k.flag_value

def _container_ports(pod):
    """(container, port dict) for every declared port of a pod."""
    return [(c, p) for c in pod.containers for p in c.get('ports') or []]


def _port_matches(port_ref, protocol, port):
    if (port.get('protocol') or 'TCP') != (protocol or 'TCP'):
        return False
    if isinstance(port_ref, int):
        return port.get('containerPort') == port_ref
    return port.get('name') == port_ref


def check_workload_selectors(objs):
    out = []
    for pod in k.pod_templates(objs):
        sel = pod.workload.get('spec', {}).get('selector')
        if not sel or not k.selects(sel, pod.labels):
            out.append('%s: spec.selector %r does not match its pod labels %r'
                       % (_pod_name(pod), sel, pod.labels))
    return out


def check_services(objs):
    out = []
    for svc in k.of_kind(objs, 'Service'):
        sel = svc.get('spec', {}).get('selector')
        pods = k.selected_pods(objs, sel or None,
                               svc['metadata'].get('namespace'))
        if not pods:
            out.append('%s: selector %r selects no pod' % (_name(svc), sel))
            continue
        for p in svc['spec'].get('ports') or []:
            target = p.get('targetPort', p.get('port'))
            proto = p.get('protocol', 'TCP')
            for pod in pods:
                if not any(_port_matches(target, proto, port)
                           for _, port in _container_ports(pod)):
                    out.append('%s: port %s targetPort %r/%s is not a '
                               'container port of %s' %
                               (_name(svc), p.get('name'), target, proto,
                                _pod_name(pod)))
    return out


def _probe_port(probe):
    for kind in ('httpGet', 'tcpSocket', 'grpc'):
        if kind in probe:
            return kind, probe[kind].get('port')
    return None, None


def _check_probe(pod, c, which, probe):
    kind, port = _probe_port(probe)
    if kind is None:
        if 'exec' in probe and probe['exec'].get('command'):
            return []
        return ['%s container %s: %s has no handler' %
                (_pod_name(pod), c['name'], which)]
    if kind == 'grpc' and not isinstance(port, int):
        return ['%s container %s: %s grpc port must be a number, not %r' %
                (_pod_name(pod), c['name'], which, port)]
    if not any(_port_matches(port, 'TCP', p) for p in c.get('ports') or []):
        return ['%s container %s: %s port %r is not a TCP port of the '
                'container' % (_pod_name(pod), c['name'], which, port)]
    return []


def check_containers(objs):
    out = []
    for pod in k.pod_templates(objs):
        pod_sc = pod.spec.get('securityContext') or {}
        for c in pod.containers + pod.init_containers:
            where = '%s container %s' % (_pod_name(pod), c.get('name'))
            long_running = c in pod.containers
            if long_running:
                for which in ('readinessProbe', 'livenessProbe'):
                    probe = c.get(which)
                    if not probe:
                        out.append('%s: no %s' % (where, which))
                    else:
                        out += _check_probe(pod, c, which, probe)
                if c.get('startupProbe'):
                    out += _check_probe(pod, c, 'startupProbe',
                                        c['startupProbe'])
            res = c.get('resources') or {}
            for part, what in (('requests', 'cpu'), ('requests', 'memory'),
                               ('limits', 'memory')):
                if not (res.get(part) or {}).get(what):
                    out.append('%s: no resources.%s.%s' % (where, part, what))
            out += _check_security(where, c, pod_sc)
    return out


def _check_security(where, c, pod_sc):
    out = []
    sc = c.get('securityContext') or {}
    if sc.get('privileged'):
        out.append('%s: privileged' % where)
    if sc.get('allowPrivilegeEscalation') is not False:
        out.append('%s: allowPrivilegeEscalation must be false' % where)
    if sc.get('readOnlyRootFilesystem') is not True:
        out.append('%s: readOnlyRootFilesystem must be true' % where)
    caps = sc.get('capabilities') or {}
    if 'ALL' not in (caps.get('drop') or []):
        out.append('%s: capabilities.drop must contain ALL' % where)
    extra = set(caps.get('add') or []) - ALLOWED_CAPABILITIES.get(c['name'],
                                                                   set())
    if extra:
        out.append('%s: adds capabilities %s beyond its allowance %s' %
                   (where, sorted(extra),
                    sorted(ALLOWED_CAPABILITIES.get(c['name'], set()))))
    non_root = sc.get('runAsNonRoot', pod_sc.get('runAsNonRoot'))
    uid = sc.get('runAsUser', pod_sc.get('runAsUser'))
    if c['name'] not in ROOT_CONTAINERS:
        if non_root is not True:
            out.append('%s: runAsNonRoot must be true' % where)
        if uid == 0:
            out.append('%s: runAsUser 0' % where)
    return out


def _is_non_root(c, pod_sc):
    sc = c.get('securityContext') or {}
    uid = sc.get('runAsUser', pod_sc.get('runAsUser'))
    non_root = sc.get('runAsNonRoot', pod_sc.get('runAsNonRoot'))
    return non_root is True or (uid is not None and uid != 0)


def check_pods(objs):
    out = []
    accounts = {o['metadata']['name']: o
                for o in k.of_kind(objs, 'ServiceAccount')}
    for pod in k.pod_templates(objs):
        where = _pod_name(pod)
        spec, pod_sc = pod.spec, pod.spec.get('securityContext') or {}
        for host in ('hostNetwork', 'hostPID', 'hostIPC'):
            if spec.get(host):
                out.append('%s: %s' % (where, host))
        if spec.get('automountServiceAccountToken') is not False:
            out.append('%s: automountServiceAccountToken must be false' %
                       where)
        sa = spec.get('serviceAccountName')
        if not sa or sa not in accounts:
            out.append('%s: serviceAccountName %r is not a ServiceAccount '
                       'of the manifests' % (where, sa))
        elif accounts[sa].get('automountServiceAccountToken') is not False:
            out.append('ServiceAccount/%s: automountServiceAccountToken '
                       'must be false' % sa)
        seccomp = (pod_sc.get('seccompProfile') or {}).get('type')
        if seccomp != 'RuntimeDefault':
            out.append('%s: seccompProfile must be RuntimeDefault' % where)
        sysctls = {s['name']: s['value'] for s in pod_sc.get('sysctls') or []}
        for c in pod.containers:
            low = [p['containerPort'] for p in c.get('ports') or []
                   if p.get('containerPort', 1024) < 1024]
            if low and _is_non_root(c, pod_sc):
                start = int(sysctls.get(UNPRIVILEGED_PORT_SYSCTL, 1024))
                if start > min(low):
                    out.append('%s container %s: non-root and listens on %s '
                               'but the pod sets no %s <= %d' %
                               (where, c['name'], sorted(set(low)),
                                UNPRIVILEGED_PORT_SYSCTL, min(low)))
    return out


def check_references(objs):
    out = []
    cms = {o['metadata']['name']: o.get('data') or {}
           for o in k.of_kind(objs, 'ConfigMap')}
    secrets = {o['metadata']['name']: o.get('data') or {}
               for o in k.of_kind(objs, 'Secret')}
    pvcs = {o['metadata']['name']
            for o in k.of_kind(objs, 'PersistentVolumeClaim')}
    for pod in k.pod_templates(objs):
        where = _pod_name(pod)
        templates = {t['metadata']['name'] for t in
                     pod.workload['spec'].get('volumeClaimTemplates') or []}
        volumes = {}
        for v in pod.spec.get('volumes') or []:
            volumes[v['name']] = v
            if 'configMap' in v:
                name = v['configMap'].get('name')
                if name not in cms:
                    out.append('%s volume %s: no ConfigMap %s' %
                               (where, v['name'], name))
                for item in v['configMap'].get('items') or []:
                    if item['key'] not in cms.get(name, {}):
                        out.append('%s volume %s: ConfigMap %s has no key %s'
                                   % (where, v['name'], name, item['key']))
            if 'secret' in v:
                name = v['secret'].get('secretName')
                if name in k.EXTERNAL_SECRETS and name not in secrets:
                    pass  # created by the operator (docs/deploy.md)
                elif name not in secrets:
                    out.append('%s volume %s: no Secret %s' %
                               (where, v['name'], name))
                for item in v['secret'].get('items') or []:
                    if item['key'] not in secrets.get(name, {}):
                        out.append('%s volume %s: Secret %s has no key %s' %
                                   (where, v['name'], name, item['key']))
            if 'persistentVolumeClaim' in v:
                claim = v['persistentVolumeClaim'].get('claimName')
                if claim not in pvcs:
                    out.append('%s volume %s: no PersistentVolumeClaim %s' %
                               (where, v['name'], claim))
        for c in pod.containers + pod.init_containers:
            cw = '%s container %s' % (where, c['name'])
            for m in c.get('volumeMounts') or []:
                if m['name'] not in volumes and m['name'] not in templates:
                    out.append('%s: volumeMount %s has no volume' %
                               (cw, m['name']))
            defined = set()
            for e in c.get('env') or []:
                defined.add(e['name'])
                ref = (e.get('valueFrom') or {}).get('configMapKeyRef')
                if ref and ref.get('key') not in cms.get(ref.get('name'), {}):
                    out.append('%s: env %s: ConfigMap %s has no key %s' %
                               (cw, e['name'], ref.get('name'),
                                ref.get('key')))
            for a in k.container_argv(c):
                for var in k.var_refs(a):
                    if var not in defined:
                        out.append('%s: $(%s) in %r is not in its env (the '
                                   'kubelet would pass it literally)' %
                                   (cw, var, a))
    return out


def check_pdbs(objs):
    out = []
    pdbs = k.of_kind(objs, 'PodDisruptionBudget')
    for pdb in pdbs:
        pods = k.selected_pods(objs, pdb['spec'].get('selector') or {'x': 'x'},
                               pdb['metadata'].get('namespace'))
        if not pods:
            out.append('%s: selector selects no pod' % _name(pdb))
    for pod in check_app.etcd_pods(objs):
        covering = [p for p in pdbs
                    if k.selects(p['spec'].get('selector'), pod.labels)]
        if not any(p['spec'].get('maxUnavailable') == 1 for p in covering):
            out.append('%s: needs a PodDisruptionBudget with maxUnavailable 1'
                       % _pod_name(pod))
    for pod in k.pod_templates(objs):
        if pod.workload['spec'].get('replicas', 1) > 1 and not any(
                k.selects(p['spec'].get('selector'), pod.labels)
                for p in pdbs):
            out.append('%s: %d replicas and no PodDisruptionBudget' %
                       (_pod_name(pod), pod.workload['spec']['replicas']))
    return out


def check_anti_affinity(objs):
    out = []
    for pod in check_app.etcd_pods(objs) + check_app.server_pods(objs):
        if pod.workload['spec'].get('replicas', 1) < 2:
            continue
        terms = (((pod.spec.get('affinity') or {}).get('podAntiAffinity')
                  or {}).get('requiredDuringSchedulingIgnoredDuringExecution')
                 or [])
        if not any(k.selects(t.get('labelSelector'), pod.labels) and
                   t.get('topologyKey') for t in terms):
            out.append('%s: no required pod anti-affinity against its own '
                       'pods' % _pod_name(pod))
    return out


def check_network_policies(objs):
    out = []
    for np in k.of_kind(objs, 'NetworkPolicy'):
        ns = np['metadata'].get('namespace')
        sel = np['spec'].get('podSelector')
        targets = k.selected_pods(objs, sel, ns)
        if not targets:
            out.append('%s: podSelector selects no pod' % _name(np))
        for rule in np['spec'].get('ingress') or []:
            for peer in rule.get('from') or []:
                if 'podSelector' in peer and 'namespaceSelector' not in peer \
                        and not k.selected_pods(objs, peer['podSelector'], ns):
                    out.append('%s: from podSelector %r selects no pod' %
                               (_name(np), peer['podSelector']))
            for p in rule.get('ports') or []:
                port, proto = p.get('port'), p.get('protocol', 'TCP')
                for pod in targets:
                    if not any(_port_matches(port, proto, cp)
                               for _, cp in _container_ports(pod)):
                        out.append('%s: port %r/%s is not a port of %s' %
                                   (_name(np), port, proto, _pod_name(pod)))
    return out


def check_images(objs, version):
    out = []
    for pod in k.pod_templates(objs):
        for c in pod.containers + pod.init_containers:
            image = c.get('image') or ''
            where = '%s container %s' % (_pod_name(pod), c.get('name'))
            if _DIGEST_RE.search(image):
                continue
            last = image.rsplit('/', 1)[-1]
            name, _, tag = last.partition(':')
            if not tag:
                out.append('%s: image %r has no tag or digest' %
                           (where, image))
            elif tag == 'latest' or not _VERSION_TAG_RE.match(tag):
                out.append('%s: image %r is not pinned to a version' %
                           (where, image))
            elif name in OWN_IMAGES and tag != version:
                out.append('%s: image %r, but deploy/VERSION is %s' %
                           (where, image, version))
    return out


# Config keys that set a listening port -> the container port names that
# must carry the same number (TCP and UDP), per ConfigMap file.
RULES = (check_workload_selectors, check_services, check_containers,
         check_pods, check_references, check_pdbs, check_anti_affinity,
         check_network_policies, check_app.check_etcd,
         check_app.check_nfs_ports)


def check(objs, version):
    """Every problem found in one rendered overlay (empty = clean)."""
    out = []
    for rule in RULES:
        out += rule(objs)
    out += check_app.check_lockwarden(objs, version)
    out += check_images(objs, version)
    return out


def main(argv):
    overlays = argv[1:] or list(k.OVERLAYS)
    version = k.version()
    bad = 0
    for overlay in overlays:
        problems = check(k.render(overlay), version)
        for p in problems:
            print('%s: %s' % (overlay, p))
        print('%s: %d problem(s)' % (overlay, len(problems)))
        bad += len(problems)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
