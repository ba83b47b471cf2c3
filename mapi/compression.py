"""Compressed trace files (gzip, xz, bzip2), recognised by their magic numbers: the savefile
backend reads them transparently, and the registry probes their decompressed first bytes.  The
decompressor modules are imported only when a file needs one."""
import importlib

# magic, name, module whose open() reads it
FORMATS = ((b"\x1f\x8b", "gzip", "gzip"), (b"\xfd7zXZ\x00", "xz", "lzma"), (b"BZh", "bzip2", "bz2"))
MAGIC_BYTES = max(len(m) for m, _, _ in FORMATS)


def compression_of(head):
    """"gzip", "xz", "bzip2" or None for a file starting with `head`."""
    for magic, name, _ in FORMATS:
        if head.startswith(magic):
            return name
    return None


def open_decompressed(path, compression):
    """A binary file object reading `path` through its decompressor."""
    module = next(m for _, name, m in FORMATS if name == compression)
    return importlib.import_module(module).open(path, "rb")


def read_head(path, n=64):
    """The first `n` bytes of a file as its reader sees them (decompressed); b"" when it cannot
    be read (a directory, a missing file: the backend that opens it says why)."""
    try:
        with open(path, "rb") as f:
            head = f.read(max(n, MAGIC_BYTES))
        compression = compression_of(head)
        if compression is None:
            return head[:n]
        with open_decompressed(path, compression) as f:
            return f.read(n)
    except Exception:          # unreadable or corrupt: the backend's open reports it precisely
        return b""
