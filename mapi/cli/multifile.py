"""Several trace files as one offline device: `mapi run -r a.pcap -r b.pcap` (in turn) and
`--merge` (by time, as mergecap does).

Each file is opened by the backend MAPI would pick for it alone.  In turn: the batches of the
first file, then of the second...  Merged: every batch handed to the engine is a run of one
file's batch whose packets come before the other files' next packets ((time, file order)
ties go to the earlier file); its packet arrays are copied (metadata, never packet bytes), and
the file's memory is shared with the run until the engine releases it.

Registered at run time by the command as the backend `files`: create_offline_device(first,
fmt, backend="files", paths=[...], merge=bool).
"""
import os
import stat

from mapi import hookimpl
from mapi._engine import ffi, lib
from mapi.descriptor import BackendDescriptor, PacketSource
from mapi.errors import MapiError, EBADARG

NAME = "files"
_ARRAYS = (("off", "uint64_t"), ("caplen", "uint32_t"), ("wirelen", "uint32_t"),
           ("ts", "int64_t"), ("ifindex", "uint16_t"))


class _Child:
    """One file: its source and a private batch with the read position in it."""

    def __init__(self, source):
        self.source = source
        self.c = ffi.gc(lib.mapi_batch_new(65536), lib.mapi_batch_free)
        self.keep = None
        self.pos = 0
        self.done = False

    def head(self):
        """Timestamp of the next packet, reading the next batch when needed; None at the end."""
        while not self.done and self.pos >= self.c.n:
            self.drop()
            self.c.n = 0
            if not self.source.next_batch_into(self):
                self.done = True
                self.c.n = 0
            self.pos = 0
        return None if self.done else self.c.ts[self.pos]

    def drop(self):
        keep, self.keep = self.keep, None
        if keep is not None and hasattr(keep, "release"):
            keep.release()


class FilesSource(PacketSource):
    offline = True

    def __init__(self, paths, merge, open_one):
        self.paths = list(paths)
        self.merge = merge
        self.children = []
        try:
            for p in self.paths:
                self.children.append(_Child(open_one(p)))
        except BaseException:
            self.close()
            raise
        first = self.children[0].source
        self.name = "+".join(self.paths)
        self.linktype = first.linktype
        self.snaplen = max(ch.source.snaplen for ch in self.children)
        self.nsec = any(getattr(ch.source, "nsec", False) for ch in self.children)
        self.current = 0
        self.seq = 0

    def next_batch_into(self, batch):
        more = self._merged(batch) if self.merge else self._in_turn(batch)
        if more:
            batch.c.first_seq = self.seq
            self.seq += batch.c.n
        return more

    def _in_turn(self, batch):
        while self.current < len(self.children):
            if self.children[self.current].source.next_batch_into(batch):
                return True
            self.current += 1
        return False

    def _merged(self, batch):
        heads = [(ch.head(), i) for i, ch in enumerate(self.children)]
        live = [(t, i) for t, i in heads if t is not None]
        if not live:
            return False
        t, i = min(live)
        ch = self.children[i]
        # the run ends before the first packet that another file's head precedes
        limit = None
        for t2, j in live:
            if j != i:
                bound = t2 if i < j else t2 - 1          # ties: the earlier file first
                limit = bound if limit is None else min(limit, bound)
        end = ch.c.n if limit is None else lib.mapi_batch_find_ts(ch.c, ch.pos, limit + 1)
        n = end - ch.pos
        c = batch.c
        for field, ctype in _ARRAYS:
            ffi.memmove(getattr(c, field), getattr(ch.c, field) + ch.pos, n * ffi.sizeof(ctype))
        c.base, c.n, c.linktype = ch.c.base, n, ch.c.linktype
        c.seq = ffi.NULL
        c.tags = ffi.NULL
        batch.keep = ch.keep.acquire() if ch.keep is not None and hasattr(ch.keep, "acquire") \
            else None
        ch.pos = end
        return True

    def stats(self):
        out = dict(files=len(self.children), file_index=self.current)
        offset = 0
        for ch in self.children:
            offset += ch.source.stats().get("offset", 0)
        out["offset"] = offset
        return out

    def info(self):
        first = self.children[0].source.info()
        return dict(path=self.name, paths=self.paths, merge=self.merge,
                    format=first.get("format"), compression=first.get("compression"),
                    linktype=self.linktype, snaplen=self.snaplen, header=first.get("header"),
                    nsec=self.nsec, files=[ch.source.info() for ch in self.children])

    def close(self):
        for ch in self.children:
            ch.drop()
            ch.source.close()


def _open_offline(path, fmt=None, options=None):
    from mapi.registry import get_registry
    options = dict(options or {})
    paths = options.pop("paths", None) or [path]
    merge = bool(options.pop("merge", False))
    backend = options.pop("child_backend", None)
    if options:
        raise MapiError(EBADARG, "the files backend has no option %s" % ", ".join(sorted(options)),
                        argument=sorted(options)[0])
    reg = get_registry()

    def open_one(p):
        if backend:
            desc = reg.backend(backend)
        elif is_stream(p):
            desc = reg.backend("savefile")      # probing would eat the head of a pipe
        else:
            desc = reg.offline_backend(p)         # the API's own choice of backend per file
        return desc.open_offline(p, fmt, {})
    return FilesSource(paths, merge, open_one)


def is_stream(path):
    """A pipe or terminal (stdin): it can be read once, so nothing may peek at it first."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


class _Plugin:
    @hookimpl
    def scampi_backends(self):
        return [BackendDescriptor(name=NAME, doc="several trace files read in turn or merged "
                                  "by time (mapi run -r A -r B [--merge])",
                                  open_offline=_open_offline)]


def register():
    """Declare the `files` backend to the registry of this process (once)."""
    from mapi.registry import get_registry
    reg = get_registry()
    if NAME not in reg.backends:
        reg.register(_Plugin(), name="mapi-cli-files")
