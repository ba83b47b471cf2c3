"""Driving the `mapi` command as a user would, for the CLI tests."""
import io
import os
import sys

from . import tcpdump_pcap


def run_cli(*argv):
    """(exit code, stdout, stderr) of `mapi ARGV` run in this process."""
    from mapi import cli
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = cli.main([str(a) for a in argv])
    finally:
        sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


def read_pty(fd):
    """Everything written to the other side of pty `fd` until it closed, as text."""
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:                  # EIO: the other side is closed
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode()


def tcpdump_counts(path, expr):
    """(packets, wire bytes) of the records `tcpdump -r path -w - expr` writes, read from the
    pcap record headers (orig_len) of its output."""
    recs = tcpdump_pcap(path, expr)
    return len(recs), sum(r[1] for r in recs)
