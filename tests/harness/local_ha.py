"""A replicated lockwarden on loopback: etcd members and lockwarden-servers.

For tests that drive the real binaries through lockwardenctl (the failover
drill, `lockwardenctl drill`): `members` etcd processes (Debian's etcd, data
in the test's work directory) and three lockwarden-server instances with
--store=etcd, each on its own free loopback port. Every process is started
here and killed by stop(); every wait has a deadline.
"""

import os
import subprocess
import time

from tests.harness import peers
from tests.harness.procs import free_loopback_port as free_port

ETCD_HEALTHY_TIMEOUT_S = 30.0
SERVER_IDS = (1, 2, 3)


class LocalHaCluster:
    """etcd + three lockwarden-servers on 127.0.0.1.

    `metrics`: give every server a --metrics-listen port (metrics_ports).
    `pid_files`: write <workdir>/s<i>.pid for every server start (a drill's
    kill command reads the leader's pid from there).
    """

    def __init__(self, workdir, members=1, metrics=False, pid_files=False):
        self.workdir = workdir
        self.members = members
        self.pid_files = pid_files
        self.etcd_procs = []
        self.procs = {}
        self.etcd_client_ports = [free_port() for _ in range(members)]
        self.etcd_peer_ports = [free_port() for _ in range(members)]
        self.ports = {i: free_port() for i in SERVER_IDS}
        self.metrics_ports = ({i: free_port() for i in SERVER_IDS}
                              if metrics else {})
        self.server_bin = peers.runfile('server/lockwarden-server')
        self.ctl_bin = peers.runfile('cli/lockwardenctl')

    def endpoints(self):
        return ','.join('http://127.0.0.1:%d' % p
                        for p in self.etcd_client_ports)

    def start_etcd(self):
        cluster = ','.join('e%d=http://127.0.0.1:%d' % (i, p)
                           for i, p in enumerate(self.etcd_peer_ports))
        for i in range(self.members):
            log = open(os.path.join(self.workdir, 'etcd%d.log' % i), 'w')
            self.etcd_procs.append(subprocess.Popen(
                ['etcd', '--name', 'e%d' % i,
                 '--data-dir', os.path.join(self.workdir, 'etcd%d' % i),
                 '--listen-client-urls',
                 'http://127.0.0.1:%d' % self.etcd_client_ports[i],
                 '--advertise-client-urls',
                 'http://127.0.0.1:%d' % self.etcd_client_ports[i],
                 '--listen-peer-urls',
                 'http://127.0.0.1:%d' % self.etcd_peer_ports[i],
                 '--initial-advertise-peer-urls',
                 'http://127.0.0.1:%d' % self.etcd_peer_ports[i],
                 '--initial-cluster', cluster,
                 '--initial-cluster-token', 'lwt-local-ha',
                 '--initial-cluster-state', 'new'],
                stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + ETCD_HEALTHY_TIMEOUT_S
        while time.monotonic() < deadline:
            r = subprocess.run(['etcdctl', '--endpoints',
                                self.endpoints().replace('http://', ''),
                                'endpoint', 'health'],
                               capture_output=True, timeout=15,
                               env=dict(os.environ, ETCDCTL_API='3'))
            if r.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError('etcd did not become healthy')

    def start_server(self, i):
        log = open(os.path.join(self.workdir, 's%d.log' % i), 'a')
        args = [self.server_bin, '--store=etcd',
                '--etcd-endpoints=' + self.endpoints(),
                '--listen=127.0.0.1:%d' % self.ports[i], '--server-id=s%d' % i,
                '--grace-period-ms=60000']
        if self.metrics_ports:
            args.append('--metrics-listen=127.0.0.1:%d' % self.metrics_ports[i])
        self.procs[i] = subprocess.Popen(args, stdout=log,
                                         stderr=subprocess.STDOUT)
        if self.pid_files:
            with open(os.path.join(self.workdir, 's%d.pid' % i), 'w') as f:
                f.write(str(self.procs[i].pid))

    def start(self):
        """etcd, then every server."""
        self.start_etcd()
        for i in SERVER_IDS:
            self.start_server(i)

    def restart_dead(self):
        for i, p in self.procs.items():
            if p.poll() is not None:
                self.start_server(i)

    def servers(self):
        return ','.join('127.0.0.1:%d' % p for p in self.ports.values())

    def ctl(self, *args, check=True, timeout=30, server=None):
        """lockwardenctl against every server (or `server` alone)."""
        r = subprocess.run([self.ctl_bin,
                            '--server=' + (server or self.servers()),
                            '--timeout=3s'] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError('lockwardenctl %s (at %s): exit %d\n%s\n%s' % (
                args, server or 'all', r.returncode, r.stdout, r.stderr))
        return r

    def ctl_at(self, i, *args, check=True):
        """lockwardenctl against server i alone."""
        return self.ctl(*args, check=check,
                        server='127.0.0.1:%d' % self.ports[i])

    def stop(self):
        for p in list(self.procs.values()) + self.etcd_procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
