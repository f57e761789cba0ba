"""Packet captures on a test host, and checks that they decode cleanly.

Capture.start() runs dumpcap inside a host's namespace with a capture filter
on the given ports; stop() ends it with SIGINT so the pcapng file is
complete. check_capture_clean() asks Wireshark's dissectors (an independent
implementation of NLM, NSM and portmap) whether any packet is malformed or
raised an expert error, and lists the RPC procedures it decoded.

Thread-safety: none; single-threaded harness.
"""

import collections
import os
import signal
import time

from tests.harness import procs
from tests.harness.procs import HarnessError

# tshark on a small capture takes well under a second; allow a busy VM.
TSHARK_TIMEOUT_S = 30.0
# After dumpcap's "Capturing on" banner, before traffic may start.
CAPTURE_START_SETTLE_S = 0.3
# Longer than libpcap's ring block timeout (dumpcap asks for 250 ms); see
# Capture.stop().
CAPTURE_SETTLE_S = 0.6
# Wireshark's expert severity "error" (epan/proto.h PI_ERROR).
EXPERT_SEVERITY_ERROR = 0x00800000

PROGRAM_NAMES = {
    100000: 'PORTMAP',
    100003: 'NFS',
    100005: 'MOUNT',
    100021: 'NLM',
    100024: 'NSM',
}
# Procedure names by (program, version); NLM 1 and 3 share v4's numbering.
_NLM_PROCS = {
    0: 'NULL', 1: 'TEST', 2: 'LOCK', 3: 'CANCEL', 4: 'UNLOCK', 5: 'GRANTED',
    6: 'TEST_MSG', 7: 'LOCK_MSG', 8: 'CANCEL_MSG', 9: 'UNLOCK_MSG',
    10: 'GRANTED_MSG', 11: 'TEST_RES', 12: 'LOCK_RES', 13: 'CANCEL_RES',
    14: 'UNLOCK_RES', 15: 'GRANTED_RES', 16: 'SM_NOTIFY_CB', 20: 'SHARE',
    21: 'UNSHARE', 22: 'NM_LOCK', 23: 'FREE_ALL',
}
_NSM_PROCS = {
    0: 'NULL', 1: 'STAT', 2: 'MON', 3: 'UNMON', 4: 'UNMON_ALL',
    5: 'SIMU_CRASH', 6: 'NOTIFY',
}
_PMAP2_PROCS = {0: 'NULL', 1: 'SET', 2: 'UNSET', 3: 'GETPORT', 4: 'DUMP',
                5: 'CALLIT'}
_RPCB_PROCS = {0: 'NULL', 1: 'SET', 2: 'UNSET', 3: 'GETADDR', 4: 'DUMP',
               5: 'CALLIT', 6: 'GETTIME', 7: 'UADDR2TADDR',
               8: 'TADDR2UADDR', 9: 'GETVERSADDR', 10: 'INDIRECT',
               11: 'GETADDRLIST', 12: 'GETSTAT'}


def procedure_name(program, version, procedure):
    """'NLM4 LOCK'-style name of an RPC procedure (numeric if unknown)."""
    table = {}
    if program == 100021:
        table = _NLM_PROCS
    elif program == 100024:
        table = _NSM_PROCS
    elif program == 100000:
        table = _PMAP2_PROCS if version == 2 else _RPCB_PROCS
    prog = PROGRAM_NAMES.get(program, str(program))
    return '%s%d %s' % (prog, version, table.get(procedure, str(procedure)))


class Capture:
    """A running dumpcap; use Host.capture() to start one."""

    def __init__(self, proc, path):
        self.proc = proc
        self.path = path

    @classmethod
    def start(cls, host, path, ports, iface='any', timeout=10.0, bpf=None):
        """dumpcap on `host` capturing `ports` (TCP and UDP), or whatever
        the capture filter `bpf` selects if given."""
        if not ports and not bpf:
            raise ValueError('capture needs ports or a filter')
        bpf = bpf or ' or '.join('port %d' % int(p) for p in ports)
        # -q: no packet counts on stderr; -P would force pcap, pcapng is fine.
        argv = ['dumpcap', '-q', '-i', iface, '-f', bpf, '-w', path]
        proc = host.spawn(argv, log_path=path + '.log', name='dumpcap')
        proc.wait_for_log(r'Capturing on', timeout)
        # libpcap discards what the ring caught before the capture filter
        # was installed; give dumpcap a moment past its banner so the first
        # packets of the test are not among them.
        time.sleep(CAPTURE_START_SETTLE_S)
        return cls(proc, path)

    def stop(self, timeout=10.0, settle_s=CAPTURE_SETTLE_S):
        """Ends the capture (SIGINT lets dumpcap finish the file); returns
        the capture file path.

        libpcap's TPACKET_V3 ring hands packets over a block at a time, when
        the block fills or its timeout expires; dumpcap does not drain a
        partly filled block on SIGINT. Waiting `settle_s` first makes the
        last packets part of the file.
        """
        time.sleep(settle_s)
        self.proc.stop(signal.SIGINT, timeout)
        if not os.path.exists(self.path):
            raise HarnessError('dumpcap wrote no %s; log:\n%s' %
                               (self.path, self.proc.log_text()))
        return self.path


CaptureReport = collections.namedtuple(
    'CaptureReport', ['problems', 'calls', 'replies', 'packets',
                      'duplicate_calls'])
CaptureReport.__doc__ = """What tshark made of a capture.

problems: list of 'frame N: <info>' lines, malformed or expert errors.
calls:    collections.Counter of procedure names ('NLM4 LOCK') called.
replies:  collections.Counter of procedure names replied to.
packets:  number of frames in the file.
duplicate_calls: Counter of procedure names of calls that repeat an earlier
          call's xid (retransmissions, as a duplicate request cache sees).
"""


def _tshark(args):
    res = procs.run_bounded(['tshark', '-n'] + args, TSHARK_TIMEOUT_S,
                            check=False)
    if res.returncode != 0:
        raise HarnessError('tshark %s failed (%d): %s' %
                           (' '.join(args), res.returncode, res.stderr))
    return res.stdout


def rpc_peer_port_rules(path, rpc_ports):
    """tshark -d rules decoding as RPC the *other* end of every TCP/UDP
    conversation with one of `rpc_ports`.

    A client's reserved source port (bindresvport: 512-1023) may be the
    registered port of another protocol, which tshark tries before the
    higher RPC port: port 862 is TWAMP-Control, and a GRANTED reply to it
    decodes as a malformed TWAMP "Accept Session". Decoding that port as
    RPC for this capture keeps the check about our traffic.
    """
    rows = _tshark(['-r', path, '-T', 'fields', '-e', 'tcp.srcport',
                    '-e', 'tcp.dstport', '-e', 'udp.srcport',
                    '-e', 'udp.dstport'])
    wanted = {int(p) for p in rpc_ports}
    rules = set()
    for line in rows.splitlines():
        f = line.split('\t')
        for proto, a, b in (('tcp', 0, 1), ('udp', 2, 3)):
            if len(f) <= b or not f[a] or not f[b]:
                continue
            src, dst = int(f[a]), int(f[b])
            for mine, peer in ((src, dst), (dst, src)):
                if mine in wanted and peer not in wanted:
                    rules.add('%s.port==%d,rpc' % (proto, peer))
    return sorted(rules)


def check_capture_clean(path, decode_as=(), rpc_ports=()):
    """Decodes `path` with tshark; returns a CaptureReport.

    `decode_as` adds tshark -d rules (e.g. 'udp.port==4045,rpc') for RPC on
    ports tshark would not recognise; NLM, NSM and portmap on registered
    ports decode without them (tshark follows portmap replies).
    `rpc_ports`: ports that carry only ONC RPC; their peers' ports are
    decoded as RPC too (rpc_peer_port_rules).
    """
    common = ['-r', path]
    for rule in list(decode_as) + rpc_peer_port_rules(path, rpc_ports):
        common += ['-d', rule]
    bad = _tshark(common + [
        '-Y', '_ws.malformed || _ws.expert.severity >= %d' %
        EXPERT_SEVERITY_ERROR,
        '-T', 'fields', '-e', 'frame.number', '-e', '_ws.col.Info'])
    problems = ['frame %s' % line.replace('\t', ': ', 1)
                for line in bad.splitlines() if line.strip()]
    rows = _tshark(common + [
        '-Y', 'rpc', '-T', 'fields', '-E', 'occurrence=f',
        '-e', 'rpc.msgtyp', '-e', 'rpc.program', '-e', 'rpc.programversion',
        '-e', 'rpc.procedure', '-e', 'rpc.call.dup'])
    calls, replies = collections.Counter(), collections.Counter()
    duplicates = collections.Counter()
    for line in rows.splitlines():
        fields = line.split('\t')
        if len(fields) != 5 or not all(fields[:4]):
            continue
        name = procedure_name(int(fields[1]), int(fields[2]), int(fields[3]))
        (calls if fields[0] == '0' else replies)[name] += 1
        if fields[0] == '0' and fields[4]:
            duplicates[name] += 1
    count = _tshark(common + ['-T', 'fields', '-e', 'frame.number'])
    return CaptureReport(problems, calls, replies,
                         len([l for l in count.splitlines() if l.strip()]),
                         duplicates)


def packet_list(path, display_filter='rpc'):
    """tshark's one-line summary of each packet (for failure messages)."""
    return _tshark(['-r', path, '-Y', display_filter])
