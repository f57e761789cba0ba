"""lockwarden-specific rules of the manifest checker (check_manifests.py
runs them with the generic Kubernetes rules).

  etcd          --initial-cluster lists exactly `replicas` members named
                <statefulset>-<i>, each at <name>.<headless service>...:
                <peer port>; the advertise URLs agree; the Service is
                headless and publishes not-ready addresses; members start
                in parallel; lockwarden-server's --etcd-endpoints name the
                same members.
  lockwarden    readiness is the leadership-aware grpc.health.v1 check of
                lockwarden.v1.LockService (native gRPC probe, or exec
                `lockwardenctl health --service=...` with TLS), so
                (standbys never being Ready) pods start in parallel and
                update OnDelete; the advertise address is the pod's name
                under the headless Service; gateways list every server
                instance; --version-string is deploy/VERSION.
  NFS ports     the ports gateway.conf and ganesha.conf set equal the
                containers' TCP and UDP ports; Service nfs publishes 2049,
                20048, 32803, 662 and 111 on both; Ganesha's NLM is off.

Thread-safety: none needed; pure functions over parsed objects.
"""

import re

from tests.k8s import k8s_objects as k

LEADER_HEALTH_SERVICE = 'lockwarden.v1.LockService'

_name = k.obj_name
_pod_name = k.pod_name
_args = k.container_argv
_flag = k.flag_value


def etcd_pods(objs):
    return [p for p in k.pod_templates(objs)
            if p.workload.get('kind') == 'StatefulSet' and
            any((_args(c) or [''])[0].endswith('/etcd') or
                (_args(c) or [''])[0] == 'etcd' for c in p.containers)]


def _member_host(sts, index, service):
    return '%s-%d.%s.$(POD_NAMESPACE).svc.$(CLUSTER_DOMAIN)' % (sts, index,
                                                                 service)


def _headless_service(objs, name, pod):
    svc = k.find(objs, 'Service', name)
    out = []
    if svc is None:
        return ['%s: serviceName %s is not a Service' % (_pod_name(pod),
                                                          name)]
    if svc['spec'].get('clusterIP') != 'None':
        out.append('%s: must be headless (clusterIP: None)' % _name(svc))
    if svc['spec'].get('publishNotReadyAddresses') is not True:
        out.append('%s: must set publishNotReadyAddresses: true (members '
                   'resolve each other before they are ready)' % _name(svc))
    if not k.selects(svc['spec'].get('selector') or {'_': '_'}, pod.labels):
        out.append('%s: does not select the pods of %s' % (_name(svc),
                                                            _pod_name(pod)))
    return out


def check_etcd(objs):
    out = []
    for pod in etcd_pods(objs):
        sts = pod.workload
        name, spec = sts['metadata']['name'], sts['spec']
        where = _name(sts)
        replicas, service = spec.get('replicas', 1), spec.get('serviceName')
        out += _headless_service(objs, service, pod)
        if spec.get('podManagementPolicy') != 'Parallel':
            out.append('%s: podManagementPolicy must be Parallel (members '
                       'need each other to become ready)' % where)
        c = pod.containers[0]
        ports = {p.get('name'): p['containerPort'] for p in c.get('ports', [])}
        peer, client = ports.get('peer', 2380), ports.get('client', 2379)
        cluster = _flag(c, '--initial-cluster') or ''
        members = []
        for entry in filter(None, cluster.split(',')):
            member, _, url = entry.partition('=')
            members.append((member, url))
        want = ['%s-%d' % (name, i) for i in range(replicas)]
        if [m for m, _ in members] != want:
            out.append('%s: --initial-cluster members %s != %s (replicas %d)'
                       % (where, [m for m, _ in members], want, replicas))
        for i, (member, url) in enumerate(members):
            expect = 'http://%s:%d' % (_member_host(name, i, service), peer)
            if url != expect:
                out.append('%s: --initial-cluster %s=%s, expected %s' %
                           (where, member, url, expect))
        if _flag(c, '--name') != '$(POD_NAME)':
            out.append('%s: --name must be $(POD_NAME)' % where)
        own = 'http://$(POD_NAME).%s.$(POD_NAMESPACE).svc.$(CLUSTER_DOMAIN)' \
            % service
        for flag, port in (('--initial-advertise-peer-urls', peer),
                           ('--advertise-client-urls', client)):
            if _flag(c, flag) != '%s:%d' % (own, port):
                out.append('%s: %s=%s, expected %s:%d' %
                           (where, flag, _flag(c, flag), own, port))
        out += _check_etcd_clients(objs, name, service, replicas, client)
    return out


def _check_etcd_clients(objs, sts, service, replicas, client_port):
    out = []
    want = ','.join('http://%s:%d' % (_member_host(sts, i, service),
                                      client_port) for i in range(replicas))
    for pod in k.pod_templates(objs):
        for c in pod.containers:
            eps = _flag(c, '--etcd-endpoints')
            if eps is not None and eps != want:
                out.append('%s container %s: --etcd-endpoints=%s, expected '
                           '%s' % (_pod_name(pod), c['name'], eps, want))
    return out


def server_pods(objs):
    return [p for p in k.pod_templates(objs)
            if any(_args(c)[:1] and _args(c)[0].endswith('lockwarden-server')
                   for c in p.containers)]


def check_lockwarden(objs, version):
    out = []
    servers = server_pods(objs)
    if len(servers) != 1:
        return ['expected one lockwarden-server workload, found %d' %
                len(servers)]
    pod = servers[0]
    sts = pod.workload
    service = sts['spec'].get('serviceName')
    replicas = sts['spec'].get('replicas', 1)
    out += _headless_service(objs, service, pod)
    c = [c for c in pod.containers
         if _args(c)[0].endswith('lockwarden-server')][0]
    probe = c.get('readinessProbe') or {}
    exec_cmd = (probe.get('exec') or {}).get('command') or []
    native = (probe.get('grpc') or {}).get('service') == LEADER_HEALTH_SERVICE
    # The exec alternative (TLS, old clusters): lockwardenctl health.
    via_ctl = (exec_cmd[:1] and exec_cmd[0].endswith('/lockwardenctl') and
               'health' in exec_cmd and
               '--service=' + LEADER_HEALTH_SERVICE in exec_cmd)
    if not (native or via_ctl):
        out.append('%s: readiness must be the grpc.health.v1 check of %s '
                   '(leader only)' % (_pod_name(pod), LEADER_HEALTH_SERVICE))
    # Only the leader is ever Ready: a RollingUpdate would wait forever for
    # the first replaced standby, OrderedReady would never start the second.
    if replicas > 1:
        if (sts['spec'].get('updateStrategy') or {}).get('type') != 'OnDelete':
            out.append('%s: updateStrategy must be OnDelete (standbys are '
                       'never Ready)' % _pod_name(pod))
        if sts['spec'].get('podManagementPolicy') != 'Parallel':
            out.append('%s: podManagementPolicy must be Parallel (standbys '
                       'are never Ready)' % _pod_name(pod))
    if _flag(c, '--version-string') != version:
        out.append('%s: --version-string=%s, deploy/VERSION is %s' %
                   (_pod_name(pod), _flag(c, '--version-string'), version))
    store = _flag(c, '--store')
    if store == 'etcd':
        adv = _flag(c, '--advertise-address') or ''
        if not adv.startswith('$(POD_NAME).%s.' % service):
            out.append('%s: --advertise-address=%s must be the pod name under '
                       'the headless Service %s' % (_pod_name(pod), adv,
                                                    service))
    name = sts['metadata']['name']
    want = ','.join('%s:7420' % _member_host(name, i, service)
                    for i in range(replicas))
    for gw in k.pod_templates(objs):
        for g in gw.containers:
            if _args(g)[:1] and _args(g)[0].endswith('lockwarden-gateway'):
                if _flag(g, '--server') != want:
                    out.append('%s container %s: --server=%s, expected every '
                               'server instance: %s' %
                               (_pod_name(gw), g['name'], _flag(g, '--server'),
                                want))
    return out


CONFIG_PORTS = {
    'gateway.conf': {'nlm-port': 'nlm', 'nsm-port': 'nsm',
                     'portmap-port': 'portmap'},
    'ganesha.conf': {'NFS_Port': 'nfs', 'MNT_Port': 'mountd'},
}
_CONF_VALUE_RE = r'^\s*%s\s*=\s*"?([^";\s]+)"?\s*;?\s*$'


def _conf_value(text, key):
    m = re.search(_CONF_VALUE_RE % re.escape(key), text, re.MULTILINE)
    return m.group(1) if m else None


def check_nfs_ports(objs):
    """The fixed NFS-side ports agree everywhere: the port a config file
    tells a program to listen on, the container ports (TCP and UDP) of the
    container that mounts that file, and Service "nfs" (both protocols).
    Ganesha's own NLM must be off."""
    out = []
    cms = {o['metadata']['name']: o.get('data') or {}
           for o in k.of_kind(objs, 'ConfigMap')}
    for pod in k.pod_templates(objs):
        volumes = {v['name']: v for v in pod.spec.get('volumes') or []}
        for c in pod.containers:
            for m in c.get('volumeMounts') or []:
                cm = (volumes.get(m['name']) or {}).get('configMap')
                if not cm:
                    continue
                data = cms.get(cm['name'], {})
                # Only the files this volume actually mounts (items).
                files = {i['path']: data.get(i['key'])
                         for i in cm.get('items') or []} or data
                for fname, keys in CONFIG_PORTS.items():
                    text = files.get(fname)
                    if text is None:
                        continue
                    if fname == 'ganesha.conf' and \
                            _conf_value(text, 'Enable_NLM') != 'false':
                        out.append('ConfigMap/%s: ganesha.conf must set '
                                   'Enable_NLM = false (lockwarden-gateway '
                                   'serves NLM)' % cm['name'])
                    for key, port_name in keys.items():
                        value = _conf_value(text, key)
                        for proto in ('TCP', 'UDP'):
                            ports = [p['containerPort'] for p in
                                     c.get('ports') or []
                                     if p.get('name') == '%s-%s' % (
                                         port_name, proto.lower())
                                     and p.get('protocol', 'TCP') == proto]
                            if value is None or ports != [int(value)]:
                                out.append(
                                    '%s container %s: %s %s = %s but '
                                    'container port %s-%s is %s' %
                                    (_pod_name(pod), c['name'], fname, key,
                                     value, port_name, proto.lower(), ports))
    svc = k.find(objs, 'Service', 'nfs')
    if svc is None:
        return out + ['no Service nfs']
    have = {(p.get('port'), p.get('protocol', 'TCP'))
            for p in svc['spec'].get('ports') or []}
    for port in (2049, 20048, 32803, 662, 111):
        for proto in ('TCP', 'UDP'):
            if (port, proto) not in have:
                out.append('Service/nfs: no port %d/%s' % (port, proto))
    return out

