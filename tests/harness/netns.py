"""Multi-host test topologies in Linux network namespaces.

A Topology is a set of hosts, each a network namespace with one interface
(eth0) on a private Ethernet segment: a bridge that lives in its own
"switch" namespace, so nothing is added to the root namespace's network.

  with Topology(['client', 'server']) as topo:
      server = topo['server']
      server.start_rpcbind()
      server.start_statd()
      topo['client'].run(['rpcinfo', '-p', server.ipv4])

Layout and names
  namespaces   lwt-<pid>-<run>-<host> and lwt-<pid>-<run>-sw (the switch);
               <pid> is the creating process, <run> counts Topologies in it.
  addresses    198.18.<run>.<index>/24 and fd00:5b1e:<run>::<index>/64,
               index 1, 2, ... in the order hosts were given.
  /etc/hosts   /etc/netns/<ns>/hosts names every host of the topology:
               <host> is its IPv4 address, <host>-v6 its IPv6 address;
               `ip netns exec` bind-mounts it over /etc/hosts.
  /run and /var/lib/nfs
               private per host: every command runs as
               ip netns exec NS unshare --mount --uts --propagation private
                 sh -c 'mount --bind <host>/run /run;
                        mount --bind <host>/var-lib-nfs /var/lib/nfs;
                        hostname <host>; exec CMD'
               Each command gets a fresh mount namespace, but all of a
               host's commands see the same two directories, so rpcbind's
               /run/rpcbind.sock, statd's sm/ and state are per host and
               never touch (or are touched by) the machine's own daemons.

Cleanup
  Topology.close() (also on exceptions, SIGTERM and interpreter exit) stops
  every process the topology started, by PID (each leads its own process
  group), deletes its namespaces and /etc/netns entries, and checks that
  nothing is left. cleanup_stale() removes what a killed earlier run left:
  only namespaces with our prefix whose creating process is gone.

Thread-safety: none; a Topology belongs to the thread that created it.
"""

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from tests.harness import capture
from tests.harness import procs
from tests.harness.procs import HarnessError

PREFIX = 'lwt-'
NETNS_DIR = '/run/netns'
ETC_NETNS_DIR = '/etc/netns'
# Owner records of live topologies: "<pid> <starttime>" per namespace, so a
# later run can tell a dead creator from a recycled PID.
OWNER_DIR = '/run/lockwarden-harness'
# A topology has at most this many hosts (addresses .1 .. .N in a /24).
HOSTS_MAX = 32
# Commands run by the harness itself (ip, mount) must finish within this.
SETUP_CMD_TIMEOUT_S = 20.0
RPCBIND_PORT = 111
STATD_PORT_DEFAULT = 6620

_run_counter = 0


def _proc_starttime(pid):
    """Start time of `pid` in clock ticks since boot, or None if gone."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            # Field 22; the command name (field 2) may contain spaces, so
            # split after its closing parenthesis.
            return f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _ip(*args, timeout=SETUP_CMD_TIMEOUT_S, check=True):
    return procs.run_bounded(['ip'] + list(args), timeout, check=check)


def list_namespaces():
    """Names of all network namespaces `ip netns` knows."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def _owner_alive(ns):
    """True if the process that created namespace `ns` is still running."""
    parts = ns.split('-')
    try:
        pid = int(parts[1])
    except (IndexError, ValueError):
        return False
    recorded = None
    try:
        with open(os.path.join(OWNER_DIR, ns)) as f:
            rec_pid, recorded = f.read().split()
            if int(rec_pid) != pid:
                return False
    except (OSError, ValueError):
        pass
    now = _proc_starttime(pid)
    if now is None:
        return False
    return recorded is None or recorded == now


def _remove_namespace(ns, errors):
    """Kills every process inside `ns` (they can only be ours: the namespace
    is ours), deletes it and its /etc/netns and owner entries."""
    for attempt in range(3):
        res = _ip('netns', 'pids', ns, check=False)
        pids = ([int(p) for p in res.stdout.split()]
                if res.returncode == 0 else [])
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1 * (attempt + 1))
    res = _ip('netns', 'delete', ns, check=False)
    if res.returncode != 0 and ns in list_namespaces():
        errors.append('ip netns delete %s: %s' % (ns, res.stderr.strip()))
    shutil.rmtree(os.path.join(ETC_NETNS_DIR, ns), ignore_errors=True)
    try:
        os.unlink(os.path.join(OWNER_DIR, ns))
    except FileNotFoundError:
        pass


def cleanup_stale():
    """Removes namespaces with our prefix whose creating process is dead.

    Returns the names removed. Namespaces of live runs (parallel tests) and
    anything without our prefix are never touched.
    """
    removed, errors = [], []
    for ns in list_namespaces():
        if ns.startswith(PREFIX) and not _owner_alive(ns):
            _remove_namespace(ns, errors)
            removed.append(ns)
    # Records of a run killed between creating a record and its namespace
    # (or after deleting the namespace): no namespace, dead owner.
    for parent in (ETC_NETNS_DIR, OWNER_DIR):
        try:
            names = os.listdir(parent)
        except FileNotFoundError:
            continue
        for ns in names:
            if (ns.startswith(PREFIX) and ns not in list_namespaces() and
                    not _owner_alive(ns)):
                _remove_namespace(ns, errors)
    if errors:
        raise HarnessError('stale cleanup incomplete: ' + '; '.join(errors))
    return removed


class Host:
    """One host of a Topology: a network namespace plus private /run and
    /var/lib/nfs. Create through Topology, not directly."""

    def __init__(self, topo, name, index):
        self.topo = topo
        self.name = name
        self.index = index
        self.netns = '%s%d-%d-%s' % (PREFIX, os.getpid(), topo.run, name)
        self.ipv4 = '198.18.%d.%d' % (topo.run, index)
        self.ipv6 = 'fd00:5b1e:%x::%x' % (topo.run, index)
        self.dir = os.path.join(topo.workdir, name)
        self.run_dir = os.path.join(self.dir, 'run')
        self.nfs_dir = os.path.join(self.dir, 'var-lib-nfs')
        self.rpcbind = None
        self.statd = None

    def __repr__(self):
        return 'Host(%s %s)' % (self.name, self.ipv4)

    def wrap(self, argv):
        """argv that runs `argv` on this host (namespace + private dirs)."""
        script = ('mount --bind "$1" /run && mount --bind "$2" /var/lib/nfs'
                  ' && hostname "$3" && shift 3 && exec "$@"')
        return (['ip', 'netns', 'exec', self.netns, 'unshare', '--mount',
                 '--uts', '--propagation', 'private', 'sh', '-c', script, 'sh',
                 self.run_dir, self.nfs_dir, self.name] + list(argv))

    def run(self, argv, timeout=10.0, check=True, input_text=None,
            env=None):
        """Runs argv on this host to completion; returns CompletedProcess.
        `env` adds variables to the inherited environment. Raises
        HarnessError on timeout, or on failure when check is set."""
        return procs.run_bounded(self.wrap(argv), timeout, check=check,
                                 input_text=input_text, env=_env(env))

    def spawn(self, argv, log_path=None, name=None, env=None):
        """Starts a long-running argv on this host, stdout+stderr to
        log_path (default <workdir>/<host>/<name>.log, or <name>-N.log if
        taken). Returns a procs.Process; the topology stops it on close."""
        name = name or os.path.basename(argv[0])
        if log_path is None:
            # A second process of the same name gets <name>-2.log, so no
            # log mixes the output of two processes.
            log_path = os.path.join(self.dir, '%s.log' % name)
            n = 1
            while os.path.exists(log_path):
                n += 1
                log_path = os.path.join(self.dir, '%s-%d.log' % (name, n))
        with open(log_path, 'ab') as log:
            popen = subprocess.Popen(self.wrap(argv), stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=_env(env))
        proc = procs.Process('%s@%s' % (name, self.name), argv, popen,
                             log_path, netns_inode=self.netns_inode)
        self.topo._processes.append(proc)
        return proc

    def start_rpcbind(self, timeout=10.0):
        """rpcbind in the foreground; returns once it serves TCP and UDP 111.
        (No -h: Debian 12's rpcbind 1.2.6 aborts with a double free.)"""
        proc = self.spawn(['rpcbind', '-f'], name='rpcbind')
        proc.wait_for_port(RPCBIND_PORT, 'tcp', timeout)
        proc.wait_for_port(RPCBIND_PORT, 'udp', timeout)
        self.rpcbind = proc
        return proc

    def start_statd(self, port=STATD_PORT_DEFAULT, name=None, timeout=10.0):
        """rpc.statd in the foreground with debug logging, on a fixed port,
        without running sm-notify at start. `name` (-n) is the address or
        name statd binds to. Returns once statd has registered with this
        host's rpcbind and waits for requests."""
        if self.rpcbind is None or not self.rpcbind.alive():
            raise HarnessError('%s: start_rpcbind() before start_statd()' %
                               self.name)
        argv = ['rpc.statd', '-F', '-d', '-L', '-p', str(port)]
        if name:
            argv += ['-n', name]
        proc = self.spawn(argv, name='statd')
        proc.wait_for_log(r'Waiting for client connections', timeout)
        proc.wait_for_port(port, 'udp', timeout)
        self.statd = proc
        return proc

    def start(self, argv, name=None, tcp_ports=(), udp_ports=(),
              ready_regex=None, timeout=10.0):
        """Spawns a daemon (e.g. lockwarden-gateway) and returns its Process
        once it listens on every given port and, if `ready_regex` is set,
        has logged a matching line. Raises HarnessError (quoting its log)
        if it exits or is not ready within `timeout`."""
        proc = self.spawn(argv, name=name)
        deadline = time.monotonic() + timeout
        for port in tcp_ports:
            proc.wait_for_port(port, 'tcp', max(0.1, deadline -
                                                time.monotonic()))
        for port in udp_ports:
            proc.wait_for_port(port, 'udp', max(0.1, deadline -
                                                time.monotonic()))
        if ready_regex:
            proc.wait_for_log(ready_regex, max(0.1, deadline -
                                               time.monotonic()))
        return proc

    def capture(self, path, ports, iface='any', timeout=10.0, bpf=None):
        """Starts dumpcap on this host (see capture.Capture)."""
        return capture.Capture.start(self, path, ports, iface, timeout, bpf)

    def add_address(self, address, prefix=None):
        """Adds `address` to eth0 (/24 or /64 unless `prefix`): a floating
        service address (VIP). See Topology.move_address()."""
        v6 = ':' in address
        prefix = prefix or (64 if v6 else 24)
        _ip('-n', self.netns, 'addr', 'add', '%s/%d' % (address, prefix),
            'dev', 'eth0', *(['nodad'] if v6 else []))

    def remove_address(self, address, prefix=None):
        v6 = ':' in address
        prefix = prefix or (64 if v6 else 24)
        _ip('-n', self.netns, 'addr', 'del', '%s/%d' % (address, prefix),
            'dev', 'eth0')

    def set_link(self, up):
        """Takes this host's eth0 up or down (a crude partition)."""
        _ip('-n', self.netns, 'link', 'set', 'dev', 'eth0',
            'up' if up else 'down')

    @property
    def netns_inode(self):
        """Inode identifying this host's network namespace."""
        return os.stat(os.path.join(NETNS_DIR, self.netns)).st_ino

    def _create(self):
        _ip('netns', 'add', self.netns)
        self.topo._record_owner(self.netns)
        sw = self.topo.switch_ns
        port = 'h%d' % self.index
        _ip('-n', self.netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer',
            'name', port, 'netns', sw)
        _ip('-n', sw, 'link', 'set', 'dev', port, 'master', 'br0')
        _ip('-n', sw, 'link', 'set', 'dev', port, 'up')
        _ip('-n', self.netns, 'link', 'set', 'dev', 'lo', 'up')
        _ip('-n', self.netns, 'addr', 'add', self.ipv4 + '/24', 'dev', 'eth0')
        # nodad: the address is usable at once instead of after DAD.
        _ip('-n', self.netns, 'addr', 'add', self.ipv6 + '/64', 'dev', 'eth0',
            'nodad')
        _ip('-n', self.netns, 'link', 'set', 'dev', 'eth0', 'up')
        os.makedirs(self.run_dir)
        for sub in ('sm', 'sm.bak'):
            os.makedirs(os.path.join(self.nfs_dir, sub))


class Topology:
    """Context manager owning hosts, their processes and namespaces."""

    def __init__(self, host_names, workdir=None, keep_workdir=False):
        global _run_counter
        names = list(host_names)
        if not names or len(names) > HOSTS_MAX:
            raise ValueError('1..%d hosts, got %d' % (HOSTS_MAX, len(names)))
        if len(set(names)) != len(names):
            raise ValueError('duplicate host names: %r' % names)
        for n in names:
            if not n.replace('-', '').isalnum() or n == 'sw' or len(n) > 20:
                raise ValueError('bad host name %r' % n)
        self.run = _run_counter % 256
        _run_counter += 1
        base = (workdir or os.environ.get('TEST_TMPDIR') or
                tempfile.gettempdir())
        self.workdir = tempfile.mkdtemp(prefix='lwt-%d-%d-' %
                                        (os.getpid(), self.run), dir=base)
        self.switch_ns = '%s%d-%d-sw' % (PREFIX, os.getpid(), self.run)
        self.hosts = {}
        for i, n in enumerate(names, start=1):
            self.hosts[n] = Host(self, n, i)
        # Logs, captures and state stay for a post-mortem when the `with`
        # block fails (or when asked); a clean exit removes them.
        self.keep_workdir = keep_workdir
        self._processes = []
        self._created_ns = []
        self._closed = False
        self._old_sigterm = None

    def __getitem__(self, name):
        return self.hosts[name]

    def namespaces(self):
        return [self.switch_ns] + [h.netns for h in self.hosts.values()]

    def _record_owner(self, ns):
        self._created_ns.append(ns)
        os.makedirs(OWNER_DIR, exist_ok=True)
        with open(os.path.join(OWNER_DIR, ns), 'w') as f:
            f.write('%d %s\n' % (os.getpid(), _proc_starttime(os.getpid())))

    def __enter__(self):
        self._install_signal_handler()
        atexit.register(self.close)
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
            if not self.keep_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            return False
        # A failure is already propagating: report cleanup trouble without
        # replacing the test's own error, and keep the logs.
        try:
            self.close()
        except HarnessError as e:
            sys.stderr.write('%s (while handling %s)\n' %
                             (e, exc_type.__name__))
        sys.stderr.write('topology logs kept in %s\n' % self.workdir)
        return False

    def _install_signal_handler(self):
        """SIGTERM (Bazel's test timeout, a CI cancel) becomes SystemExit in
        the main thread, so `with` blocks unwind and close() runs."""
        try:
            self._old_sigterm = signal.signal(signal.SIGTERM, _raise_exit)
        except ValueError:  # not the main thread: rely on atexit/close().
            self._old_sigterm = None

    def _create(self):
        _ip('netns', 'add', self.switch_ns)
        self._record_owner(self.switch_ns)
        _ip('-n', self.switch_ns, 'link', 'set', 'dev', 'lo', 'up')
        _ip('-n', self.switch_ns, 'link', 'add', 'br0', 'type', 'bridge')
        _ip('-n', self.switch_ns, 'link', 'set', 'dev', 'br0', 'up')
        hosts_file = ['127.0.0.1 localhost', '::1 localhost ip6-localhost']
        for h in self.hosts.values():
            hosts_file.append('%s %s' % (h.ipv4, h.name))
            # A separate name for IPv6: getaddrinfo would otherwise prefer
            # the ULA address for `name`, and tools that bind to one family
            # (sm-notify -v) fail against the other.
            hosts_file.append('%s %s-v6' % (h.ipv6, h.name))
        for h in self.hosts.values():
            h._create()
            etc = os.path.join(ETC_NETNS_DIR, h.netns)
            os.makedirs(etc, exist_ok=True)
            with open(os.path.join(etc, 'hosts'), 'w') as f:
                f.write('\n'.join(hosts_file) + '\n')

    def address(self, index):
        """The IPv4 address .<index> of this topology's subnet, for extra
        (floating) addresses; hosts use 1..len(hosts)."""
        if not len(self.hosts) < index < 255:
            raise ValueError('index %d collides with a host or is out of '
                             'range' % index)
        return '198.18.%d.%d' % (self.run, index)

    def set_name(self, name, address):
        """Makes `name` resolve to `address` on every host (replacing an
        earlier mapping of `name`). The hosts files are rewritten in place,
        so running daemons see the change at their next lookup."""
        for h in self.hosts.values():
            path = os.path.join(ETC_NETNS_DIR, h.netns, 'hosts')
            with open(path, 'r+') as f:
                lines = [l for l in f.read().splitlines()
                         if l.split()[1:] != [name]]
                lines.append('%s %s' % (address, name))
                f.seek(0)
                f.write('\n'.join(lines) + '\n')
                f.truncate()

    def move_address(self, address, from_host, to_host):
        """Moves a floating address between hosts, as a failover does, and
        flushes every host's neighbour cache (the harness has no arping for
        a gratuitous ARP), so the next packet reaches the new owner."""
        if from_host is not None:
            from_host.remove_address(address)
        to_host.add_address(address)
        for h in self.hosts.values():
            _ip('-n', h.netns, 'neigh', 'flush', 'all')

    def processes(self):
        """Every process this topology started (running or not)."""
        return list(self._processes)

    def crashed(self):
        """Processes that exited by themselves with a non-zero status or a
        signal; a daemon under test must never appear here."""
        return [p for p in self._processes if p.crashed()]

    def close(self):
        """Stops all processes, deletes namespaces; idempotent. Raises
        HarnessError if something could not be removed."""
        if self._closed:
            return
        self._closed = True
        # A second SIGTERM must not interrupt the cleanup it asked for.
        try:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass
        errors = []
        # Reverse start order: clients and captures before the daemons they
        # talk to, statd before rpcbind.
        for proc in reversed(self._processes):
            try:
                proc.stop()
            except Exception as e:  # keep cleaning up the rest
                errors.append('%s: %s' % (proc, e))
        for ns in reversed(self._created_ns):
            _remove_namespace(ns, errors)
        try:
            signal.signal(signal.SIGTERM, self._old_sigterm
                          if self._old_sigterm is not None
                          else signal.SIG_DFL)
        except ValueError:
            pass
        try:
            atexit.unregister(self.close)
        except Exception:
            pass
        left = self.leftovers()
        if left:
            errors.append('left behind: %s' % left)
        if errors:
            raise HarnessError('topology cleanup: ' + '; '.join(errors))

    def leftovers(self):
        """Namespaces or processes of this topology that still exist."""
        left = [ns for ns in self.namespaces() if ns in list_namespaces()]
        left += ['pid %d (%s)' % (p.pid, p.name) for p in self._processes
                 if p.popen.returncode is None]
        return left


def _env(extra):
    """The inherited environment plus `extra` (None: inherit as is)."""
    if not extra:
        return None
    env = dict(os.environ)
    env.update(extra)
    return env


def _raise_exit(signum, frame):
    raise SystemExit('terminated by signal %d' % signum)
