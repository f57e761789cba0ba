"""Processes the harness starts: handles, bounded waits, and cleanup by PID.

Every process is started in its own session (start_new_session=True), so its
PID is also its process-group id. Stopping a process signals that group
only: the daemon and any children it forked (dumpcap under tshark), never
anything the harness did not start.

Thread-safety: a Process is used from the thread that created it; the
harness is single-threaded.
"""

import os
import re
import signal
import socket
import subprocess
import time

# A wait polls at this interval; short enough that a 2-minute test suite
# does not spend its time sleeping, long enough not to burn a 2-core VM.
POLL_INTERVAL_S = 0.05
# How much of a log an error message quotes.
LOG_TAIL_BYTES = 2000
# How long a process gets to exit after SIGTERM before SIGKILL.
STOP_GRACE_S = 5.0


class HarnessError(Exception):
    """A peer or the environment did not behave as the harness required."""


def free_loopback_port():
    """A TCP port the kernel considers free right now on 127.0.0.1 (bound
    and released: a daemon started on it may still race another process;
    callers retry on 'address in use')."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def tail(path, limit=LOG_TAIL_BYTES):
    """Last `limit` bytes of a file as text ('' if it does not exist)."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode('utf-8', 'replace')
    except OSError:
        return ''


def _proc_net_ports(pid, proto):
    """Local ports bound in the network namespace of `pid`.

    For TCP only sockets in LISTEN state (0A) count; for UDP every bound
    socket does. /proc/<pid>/net/* shows the sockets of the process's
    network namespace, so no command has to run inside it.
    """
    ports = set()
    for suffix in ('', '6'):
        path = '/proc/%d/net/%s%s' % (pid, proto, suffix)
        try:
            with open(path) as f:
                next(f)  # header
                for line in f:
                    fields = line.split()
                    local, state = fields[1], fields[3]
                    if proto == 'tcp' and state != '0A':
                        continue
                    ports.add(int(local.rsplit(':', 1)[1], 16))
        except (OSError, StopIteration):
            continue
    return ports


class Process:
    """A long-running process started by Host.spawn()."""

    def __init__(self, name, argv, popen, log_path, netns_inode=None):
        self.name = name
        # Inode of the network namespace the process must be in before its
        # /proc/<pid>/net is trusted (None: no check).
        self.netns_inode = netns_inode
        self.argv = list(argv)
        self.popen = popen
        self.pid = popen.pid
        self.log_path = log_path
        # Set by stop(): the exit was asked for, not a crash.
        self.stopped_by_harness = False

    def crashed(self):
        """True if the process exited by itself with a non-zero status or
        a signal (e.g. -11 for SIGSEGV)."""
        rc = self.returncode
        return rc is not None and rc != 0 and not self.stopped_by_harness

    def __repr__(self):
        return 'Process(%s pid=%d)' % (self.name, self.pid)

    def _peek_status(self):
        """Exit status if the process has exited, else None.

        Uses waitid(WNOWAIT) so an exited process stays a zombie until
        stop() reaps it: its PID (and process-group id) cannot be reused
        meanwhile, so signalling the group can never hit a stranger.
        """
        if self.popen.returncode is not None:
            return self.popen.returncode
        try:
            info = os.waitid(os.P_PID, self.pid,
                             os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return self.popen.poll()
        if info is None or info.si_pid == 0:
            return None
        if info.si_code == os.CLD_EXITED:
            return info.si_status
        return -info.si_status

    def alive(self):
        return self._peek_status() is None

    @property
    def returncode(self):
        return self._peek_status()

    def log_text(self):
        try:
            with open(self.log_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def _died(self, what):
        return HarnessError('%s exited with status %s while waiting for %s; '
                            'log %s ends:\n%s' %
                            (self.name, self.returncode, what,
                             self.log_path, tail(self.log_path)))

    def wait_for_log(self, regex, timeout=10.0, start=0):
        """Waits until the log matches `regex` (from byte `start`).

        Returns the re.Match. Raises HarnessError on timeout or if the
        process exits before the line appears (its last output is quoted).
        """
        pattern = re.compile(regex, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()[start:]
            m = pattern.search(text)
            if m:
                return m
            if not self.alive():
                # One more read: the line may have been written just before
                # the exit.
                m = pattern.search(self.log_text()[start:])
                if m:
                    return m
                raise self._died('/%s/' % regex)
            if time.monotonic() > deadline:
                raise HarnessError('%s: no /%s/ in %s after %.1fs; log '
                                   'ends:\n%s'
                                   % (self.name, regex, self.log_path,
                                      timeout, tail(self.log_path)))
            time.sleep(POLL_INTERVAL_S)

    def _in_netns(self):
        """True once the process has entered its namespace: until `ip netns
        exec` has called setns(), /proc/<pid>/net shows the machine's own
        sockets, and a port bound there must not count."""
        if self.netns_inode is None:
            return True
        try:
            return os.stat('/proc/%d/ns/net' % self.pid).st_ino == \
                self.netns_inode
        except OSError:
            return False

    def wait_for_port(self, port, proto='tcp', timeout=10.0):
        """Waits until `port` is bound (TCP: listening) in this process's
        network namespace. Raises HarnessError on timeout or exit."""
        if proto not in ('tcp', 'udp'):
            raise ValueError('proto must be tcp or udp, not %r' % proto)
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise self._died('%s port %d' % (proto, port))
            if self._in_netns() and port in _proc_net_ports(self.pid, proto):
                return
            if time.monotonic() > deadline:
                raise HarnessError('%s: %s port %d not bound after %.1fs; '
                                   'log ends:\n%s' % (self.name, proto, port,
                                                      timeout,
                                                      tail(self.log_path)))
            time.sleep(POLL_INTERVAL_S)

    def send_signal(self, sig):
        """Sends `sig` to the process group this process leads."""
        if self.alive():
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, sig=signal.SIGTERM, timeout=STOP_GRACE_S):
        """Stops the process (sig, then SIGKILL after `timeout`), kills what
        is left of its process group, and reaps it. Returns its exit status;
        idempotent."""
        if self.popen.returncode is not None:
            return self.popen.returncode
        if self.alive():
            self.stopped_by_harness = True
        self.send_signal(sig)
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL_S)
        # The leader is unreaped here (alive() never reaps), so the group id
        # is still ours: kill whatever else the group holds, then reap.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            raise HarnessError('%s (pid %d) survived SIGKILL' %
                               (self.name, self.pid)) from None
        return self.popen.returncode

    def wait(self, timeout):
        """Waits for a normal exit; raises HarnessError on timeout."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError('%s still running after %.1fs' %
                               (self.name, timeout)) from None


def run_bounded(argv, timeout, check=True, input_text=None, env=None):
    """Runs argv to completion in its own session; kills the whole group on
    timeout. Returns subprocess.CompletedProcess with text output."""
    popen = subprocess.Popen(argv, stdin=subprocess.PIPE if input_text else
                             subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             start_new_session=True, env=env)
    try:
        out, err = popen.communicate(input_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = popen.communicate()
        raise HarnessError('timed out after %.1fs: %s\nstdout: %s\nstderr: %s'
                           % (timeout, ' '.join(argv), out[-LOG_TAIL_BYTES:],
                              err[-LOG_TAIL_BYTES:])) from None
    result = subprocess.CompletedProcess(argv, popen.returncode, out, err)
    if check and popen.returncode != 0:
        raise HarnessError('exit status %d: %s\nstdout: %s\nstderr: %s' %
                           (popen.returncode, ' '.join(argv),
                            out[-LOG_TAIL_BYTES:], err[-LOG_TAIL_BYTES:]))
    return result
