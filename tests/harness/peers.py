"""Drivers for the independent peers: rpcinfo, sm-notify, nlm_client.

Each helper runs a real, unmodified tool on a test Host and turns its
output into Python values; none re-implements a protocol.

Thread-safety: none; single-threaded harness.
"""

import collections
import glob
import os
import re
import struct
import time

from tests.harness import procs
from tests.harness.procs import HarnessError

PEER_TIMEOUT_S = 10.0
NLM_PROGRAM = 100021
NLM_VERSION = 4
# Linux lockd's private statd callback procedure; statd records it in sm/.
NLM_SM_NOTIFY_PROC = 16
# nfs-utils support/nsm/file.c: SM_PRIV_SIZE.
SM_PRIV_SIZE = 16

Registration = collections.namedtuple('Registration',
                                      ['program', 'version', 'proto', 'port'])


def rpcinfo_p(host, target, timeout=PEER_TIMEOUT_S):
    """`rpcinfo -p target` run on `host`: list of Registration (portmap v2
    DUMP). Raises HarnessError if rpcinfo fails."""
    res = host.run(['rpcinfo', '-p', target], timeout=timeout)
    regs = []
    for line in res.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0].isdigit():
            regs.append(Registration(int(fields[0]), int(fields[1]),
                                     fields[2], int(fields[3])))
    return regs


def rpcinfo_T(host, netid, target, prog, vers, timeout=PEER_TIMEOUT_S):
    """`rpcinfo -T netid target prog vers` (calls NULL) run on `host`.

    Returns True if the program answered ("ready and waiting"); False with
    no exception if rpcinfo reports it is not available.
    """
    res = host.run(['rpcinfo', '-T', netid, target, str(prog), str(vers)],
                   timeout=timeout, check=False)
    return res.returncode == 0 and 'ready and waiting' in res.stdout


def _monitor_record(mon_name, my_name, prog=NLM_PROGRAM, vers=NLM_VERSION,
                    proc=NLM_SM_NOTIFY_PROC, priv=b'\0' * SM_PRIV_SIZE):
    """One line of an nfs-utils sm/<mon_name> file.

    Format (support/nsm/file.c, nsm_create_monitor_record): the NLM callback
    IPv4 address as the hex of its network-order s_addr read as a host
    integer, then program, version, procedure in %08x, the 16-byte private
    cookie in hex, mon_name, my_name. statd writes 127.0.0.1 (its lockd).
    """
    if len(priv) != SM_PRIV_SIZE:
        raise ValueError('priv must be %d bytes' % SM_PRIV_SIZE)
    addr = struct.unpack('=I', bytes([127, 0, 0, 1]))[0]
    return '%08x %08x %08x %08x %s %s %s\n' % (addr, prog, vers, proc,
                                               priv.hex(), mon_name, my_name)


def prepare_nsm_state_dir(state_dir, monitored_names, my_name, state):
    """Lays out an nfs-utils NSM state directory for sm-notify -P.

    sm/<name> for each monitored peer (one record each), an empty sm.bak/,
    and `state`: the NSM state number as a 4-byte host-order int, exactly as
    nsm_get_state() reads it.
    """
    if state < 1 or state % 2 == 0:
        # sm-notify rounds an even state up to the next odd number; an even
        # announced state cannot be produced with it.
        raise ValueError('NSM state must be odd and positive, got %d' % state)
    for sub in ('sm', 'sm.bak'):
        os.makedirs(os.path.join(state_dir, sub), exist_ok=True)
    for name in monitored_names:
        if '/' in name or not name or any(c.isspace() for c in name):
            raise ValueError('bad monitored name %r' % name)
        with open(os.path.join(state_dir, 'sm', name), 'w') as f:
            f.write(_monitor_record(name, my_name))
    with open(os.path.join(state_dir, 'state'), 'wb') as f:
        f.write(struct.pack('=i', state))


SmNotifyResult = collections.namedtuple('SmNotifyResult',
                                        ['unacknowledged', 'output'])


def sm_notify(host, state_dir, monitored_names, announced_name, state,
              retry_minutes=1, timeout=30.0):
    """Runs nfs-utils sm-notify on `host` to announce `announced_name` at
    NSM `state` to every name in monitored_names.

    sm-notify resolves each monitored name on `host` (its /etc/hosts), asks
    that peer's rpcbind for NSM, and sends SM_NOTIFY(announced_name, state).
    -n keeps `state` as written; -f ignores an earlier run's pid file.
    Returns SmNotifyResult: names that never answered (still in sm.bak/)
    and sm-notify's output. Raises HarnessError if it does not finish.
    """
    prepare_nsm_state_dir(state_dir, monitored_names, announced_name, state)
    argv = ['sm-notify', '-f', '-d', '-n', '-P', state_dir, '-m',
            str(retry_minutes), '-v', announced_name]
    res = host.run(argv, timeout=timeout, check=False)
    output = res.stdout + res.stderr
    if res.returncode != 0:
        raise HarnessError('sm-notify failed (%d): %s' % (res.returncode,
                                                          output))
    left = sorted(os.listdir(os.path.join(state_dir, 'sm.bak')))
    return SmNotifyResult(left, output)


def runfile(rel_path, executable=True):
    """Absolute path of a Bazel-built file (e.g. 'tests/peers/nlm_client'):
    from the test's runfiles under `bazel test`; otherwise the newest copy
    under bazel-out/*/bin (bazel-bin follows whichever configuration was
    built last, which may not have built this file)."""
    candidates = []
    for var in ('TEST_SRCDIR', 'RUNFILES_DIR'):
        if os.environ.get(var):
            candidates.append(os.path.join(os.environ[var],
                                           os.environ.get('TEST_WORKSPACE',
                                                          'lockwarden'),
                                           rel_path))
    for c in candidates:
        if os.path.exists(c):
            return c
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    built = glob.glob(os.path.join(root, 'bazel-out', '*', 'bin', rel_path))
    if executable:
        built = [b for b in built if os.access(b, os.X_OK)]
    else:  # a source file: the workspace copy will do
        built.append(os.path.join(root, rel_path))
        built = [b for b in built if os.path.exists(b)]
    if built:
        return max(built, key=os.path.getmtime)
    raise HarnessError('%s not built (bazel build //%s); looked in %s and '
                       'bazel-out/*/bin' % (rel_path,
                                            os.path.dirname(rel_path) + ':' +
                                            os.path.basename(rel_path),
                                            candidates))


NlmReply = collections.namedtuple('NlmReply', ['op', 'status', 'detail'])

_REPLY_RE = re.compile(
    r'^(\S+) (NLM4_\w+|RPC_ERROR|SKIPPED|SENT)(?: (.*))?$')


def parse_nlm_client_output(text):
    """nlm_client prints one 'OP STATUS [detail]' line per call; returns
    the list of NlmReply (other lines, e.g. fh=..., are ignored)."""
    replies = []
    for line in text.splitlines():
        m = _REPLY_RE.match(line.strip())
        if m:
            replies.append(NlmReply(m.group(1), m.group(2), m.group(3) or ''))
    return replies


def peer_env():
    """Environment for the C peers: under --config=asan, LeakSanitizer
    suppressions for leaks inside libnfs and libtirpc (tests/peers/
    lsan.supp); other LSAN_OPTIONS are kept."""
    try:
        supp = runfile('tests/peers/lsan.supp', executable=False)
    except HarnessError:
        return {}
    opts = os.environ.get('LSAN_OPTIONS', '')
    return {'LSAN_OPTIONS': ':'.join(
        o for o in (opts, 'suppressions=' + supp, 'print_suppressions=0')
        if o)}


def nlm_client(host, args, timeout=PEER_TIMEOUT_S, check=True):
    """Runs tests/peers/nlm_client on `host` with `args`; returns
    (list of NlmReply, CompletedProcess)."""
    res = host.run([runfile('tests/peers/nlm_client')] + list(args),
                   timeout=timeout, check=check, env=peer_env())
    return parse_nlm_client_output(res.stdout), res


_LEGACY_REPLY_RE = re.compile(r'^(\S+) (LCK_\w+|RPC_ERROR|SENT)(?: (.*))?$')


def nlm_legacy_client(host, args, timeout=PEER_TIMEOUT_S, check=True):
    """Runs tests/peers/nlm_legacy_client (NLM v1/v3 over libtirpc from the
    project's nlm_prot.x) on `host`; returns (list of NlmReply with LCK_*
    statuses, CompletedProcess)."""
    res = host.run([runfile('tests/peers/nlm_legacy_client')] + list(args),
                   timeout=timeout, check=check, env=peer_env())
    replies = []
    for line in res.stdout.splitlines():
        m = _LEGACY_REPLY_RE.match(line.strip())
        if m:
            replies.append(NlmReply(m.group(1), m.group(2), m.group(3) or ''))
    return replies, res


def start_nlm_callbacks(host, port=4045, count=0, max_seconds=120,
                        extra_args=(), timeout=PEER_TIMEOUT_S):
    """Starts nlm_client --serve-callbacks on `host` (NLM v4 registered with
    the host's rpcbind on `port`); returns the Process once it serves.
    It exits after `count` callbacks (0: never) or `max_seconds`."""
    proc = host.spawn([runfile('tests/peers/nlm_client'), '--serve-callbacks',
                       '--port', str(port), '--count', str(count),
                       '--max-seconds', str(max_seconds)] + list(extra_args),
                      name='nlm-callbacks', env=peer_env())
    proc.wait_for_log(r'^serving port=%d ' % port, timeout)
    return proc


GANESHA_NLM_PORT = 32803
GANESHA_MNT_PORT = 20048
NFS_PORT = 2049
# Ganesha 4.3 needs a few seconds to start on a 2-core VM.
GANESHA_START_TIMEOUT_S = 30.0

_GANESHA_CONF = """\
# Written by tests/harness/peers.py for one test host.
NFS_CORE_PARAM {
    Protocols = 3;
    Enable_NLM = true;
    Enable_RQUOTA = false;
    NFS_Port = %(nfs_port)d;
    MNT_Port = %(mnt_port)d;
    NLM_Port = %(nlm_port)d;
}
# Without this NLM refuses non-reclaim locks for the grace period after
# every start.
NFSV4 { Graceless = true; }
EXPORT {
    Export_Id = 1;
    Path = %(export)s;
    Pseudo = %(export)s;
    Protocols = 3;
    Transports = UDP, TCP;
    Access_Type = RW;
    Squash = No_Root_Squash;
    SecType = sys;
    FSAL { Name = %(fsal)s; }
}
LOG { Default_Log_Level = EVENT; }
"""


def start_ganesha(host, export='/export', fsal='MEM',
                  nlm_port=GANESHA_NLM_PORT,
                  mnt_port=GANESHA_MNT_PORT, nfs_port=NFS_PORT,
                  timeout=GANESHA_START_TIMEOUT_S):
    """Starts NFS-Ganesha (NFSv3 + MOUNT + NLM4) on `host`; returns the
    Process once NFS, MOUNT and NLM listen and are registered.

    The host must run rpcbind and rpc.statd already (Ganesha registers with
    the first and monitors NLM clients through the second). The MEM FSAL's
    export is empty after every start: create files with nlm_client
    --mount-export ... --create. For fsal='VFS', `export` must be a
    directory that exists on the machine.
    """
    if host.rpcbind is None or host.statd is None:
        raise HarnessError('%s: start_rpcbind() and start_statd() before '
                           'start_ganesha()' % host.name)
    gdir = os.path.join(host.dir, 'ganesha')
    os.makedirs(gdir, exist_ok=True)
    # Ganesha keeps NFSv4 recovery data under /var/lib/nfs/ganesha even
    # with NFSv4 off; give it the directory in the host's private copy.
    os.makedirs(os.path.join(host.nfs_dir, 'ganesha'), exist_ok=True)
    conf = os.path.join(gdir, 'ganesha.conf')
    with open(conf, 'w') as f:
        f.write(_GANESHA_CONF % dict(export=export, fsal=fsal,
                                     nlm_port=nlm_port, mnt_port=mnt_port,
                                     nfs_port=nfs_port))
    log = os.path.join(gdir, 'ganesha.log')
    proc = host.spawn(['ganesha.nfsd', '-F', '-f', conf, '-L', log, '-p',
                       os.path.join(gdir, 'ganesha.pid'), '-N', 'NIV_EVENT'],
                      log_path=os.path.join(gdir, 'stdout.log'),
                      name='ganesha')
    proc.ganesha_log = log
    for port in (nfs_port, mnt_port, nlm_port):
        proc.wait_for_port(port, 'tcp', timeout)
    proc.wait_for_port(nlm_port, 'udp', timeout)
    return proc


NsmReply = collections.namedtuple('NsmReply', ['op', 'result'])


def nsm_client(host, args, timeout=PEER_TIMEOUT_S, check=True):
    """Runs tests/peers/nsm_client on `host`; returns (list of NsmReply,
    CompletedProcess). `result` is the rest of the line: 'STAT_SUCC
    state=3', 'state=5', 'void-reply' or 'RPC_ERROR <why>'."""
    res = host.run([runfile('tests/peers/nsm_client')] + list(args),
                   timeout=timeout, check=check, env=peer_env())
    replies = []
    for line in res.stdout.splitlines():
        op, _, rest = line.strip().partition(' ')
        if op and rest:
            replies.append(NsmReply(op, rest))
    return replies, res


ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
# Members of a fresh cluster find each other within a few seconds.
ETCD_START_TIMEOUT_S = 30.0


def etcd_endpoints(hosts):
    """Client URLs of etcd members on `hosts` (for --endpoints)."""
    return ','.join('http://%s:%d' % (h.ipv4, ETCD_CLIENT_PORT) for h in hosts)


def start_etcd_cluster(hosts, token='lwt', timeout=ETCD_START_TIMEOUT_S,
                       extra_args=()):
    """Starts one etcd member on each host, as one new cluster (the
    replicated store lockwarden-server can use); returns the Processes once
    every member reports healthy through etcdctl.

    Data lives in <host dir>/etcd; members use plain HTTP on
    <ipv4>:2379 (clients) and :2380 (peers). `extra_args` are appended to
    every member's command line (e.g. ['--max-txn-ops=1024']).
    """
    cluster = ','.join('%s=http://%s:%d' % (h.name, h.ipv4, ETCD_PEER_PORT)
                       for h in hosts)
    members = []
    for h in hosts:
        members.append(h.spawn([
            'etcd', '--name', h.name,
            '--data-dir', os.path.join(h.dir, 'etcd'),
            '--listen-client-urls', 'http://%s:%d,http://127.0.0.1:%d' % (
                h.ipv4, ETCD_CLIENT_PORT, ETCD_CLIENT_PORT),
            '--advertise-client-urls', 'http://%s:%d' % (h.ipv4,
                                                         ETCD_CLIENT_PORT),
            '--listen-peer-urls', 'http://%s:%d' % (h.ipv4, ETCD_PEER_PORT),
            '--initial-advertise-peer-urls', 'http://%s:%d' % (
                h.ipv4, ETCD_PEER_PORT),
            '--initial-cluster', cluster,
            '--initial-cluster-token', token,
            '--initial-cluster-state', 'new'] + list(extra_args), name='etcd'))
    deadline = time.monotonic() + timeout
    for m in members:
        m.wait_for_port(ETCD_CLIENT_PORT, 'tcp',
                        max(0.1, deadline - time.monotonic()))
    endpoints = etcd_endpoints(hosts)
    while True:
        res = hosts[0].run(['etcdctl', '--endpoints', endpoints,
                            '--command-timeout=2s', 'endpoint', 'health'],
                           timeout=10, check=False)
        if res.returncode == 0:
            return members
        for m in members:
            if not m.alive():
                raise HarnessError('%s exited; log ends:\n%s' %
                                   (m.name, procs.tail(m.log_path)))
        if time.monotonic() > deadline:
            raise HarnessError('etcd cluster not healthy after %.0fs: %s' %
                               (timeout, res.stdout + res.stderr))
        time.sleep(0.2)


def etcdctl(host, endpoints, args, timeout=PEER_TIMEOUT_S, check=True):
    """Runs `etcdctl --endpoints ... args` on `host`; returns its stdout."""
    res = host.run(['etcdctl', '--endpoints', endpoints,
                    '--command-timeout=3s'] + list(args), timeout=timeout,
                   check=check)
    return res.stdout
