"""Where a job's packets come from (mapi.cli.job): one or several trace files, read in turn or
merged by time ("-" is standard input), or a live device."""
import os

import mapi

from .flowspec import SpecError

STDIN = "-"


class Source:
    """Where a job's packets come from: `paths` (files read in turn, or merged by time) or a
    live `device` name ("eth0", "ring:eth0", "combo6:eth0", "netflow:udp:0.0.0.0:2055")."""

    def __init__(self, paths=None, device=None, fmt=None, backend=None, merge=False):
        if bool(paths) == bool(device):
            raise SpecError(None, None, "give trace files (-r FILE) or a device (-i DEVICE), not both")
        self.paths = [STDIN if p in (STDIN, "/dev/stdin") else p for p in (paths or [])]
        self.device = device
        self.fmt, self.backend, self.merge = fmt, backend, merge
        if self.paths.count(STDIN) > 1:
            raise SpecError(None, None, "-r - (standard input) can be given once")

    @property
    def live(self):
        return self.device is not None

    @property
    def label(self):
        if self.live:
            return self.device
        return ", ".join("standard input" if p == STDIN else p for p in self.paths)

    def open(self):
        """The device name flows are created on (a live device opens with its first flow)."""
        if self.live:
            return self.device
        from .multifile import is_stream
        paths = ["/dev/stdin" if p == STDIN else p for p in self.paths]
        if len(paths) == 1:
            backend = self.backend or ("savefile" if is_stream(paths[0]) else None)
            return mapi.create_offline_device(paths[0], self.fmt, backend=backend)
        from . import multifile
        multifile.register()
        return mapi.create_offline_device(paths[0], self.fmt, backend=multifile.NAME,
                                          paths=paths, merge=self.merge,
                                          child_backend=self.backend)

    def progress_bar(self, dev, stream, mode):
        from mapi.progress import ProgressBar
        if self.live:
            return ProgressBar(dev, mode="never")
        if len(self.paths) == 1 and self.paths[0] != STDIN:
            return ProgressBar.for_file(dev, self.paths[0], stream=stream, mode=mode)
        total = None
        if STDIN not in self.paths and not mapi.get_device_info(dev).get("compression"):
            total = sum(os.path.getsize(p) for p in self.paths)
        return ProgressBar(dev, total, stream=stream, mode=mode)
