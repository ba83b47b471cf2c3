"""Packets of a distributed flow's TO_BUFFER: every sensor's stream merged into one, each packet
tagged with its sensor, in timestamp order within a bounded window.

A packet is handed out once every sensor that is still sending has a packet waiting (so none
can come earlier), or once it has waited WINDOW seconds since it arrived for a sensor that
sends nothing (a quiet or missing sensor cannot hold the others up for longer; a packet of that
sensor arriving later with an earlier timestamp is then out of order by at most its lag).  At most
MAX_BUFFERED packets wait; beyond that the oldest goes out."""
import heapq
import itertools
import time
from collections import namedtuple

from mapi.errors import MapiError
from mapi.packet import Packet

WINDOW = 0.2
MAX_BUFFERED = 1 << 17
POLL = 0.005


class SensorPacket(namedtuple("SensorPacket", Packet._fields + ("sensor",))):
    """A packet of a distributed flow: mapi.Packet's fields, then the sensor it came from."""

    __slots__ = ()
    decode = Packet.decode


class MergedPackets:
    def __init__(self, sources):
        """sources: {sensor name: () -> reader (next_batch) or None while it has none}."""
        self.sources = sources
        self.heap = []
        self.waiting = {name: 0 for name in sources}     # packets of each sensor in the heap
        self.done = set()                                # ended or gone for good
        self._seq = itertools.count()
        self.last_ts = 0
        self.delivered = 0

    def _pull(self, name, timeout):
        reader = self.sources[name]()
        if reader is None:
            return False
        try:
            batch = reader.next_batch(timeout)
        except MapiError:
            return False                   # the sensor is gone: the others go on
        if batch is None:
            self.done.add(name)
            return False
        now = time.monotonic()
        for p in batch:
            heapq.heappush(self.heap, (p.ts, next(self._seq), name, p, now))
        self.waiting[name] += len(batch)
        return bool(batch)

    def _ready(self):
        """May the oldest waiting packet go out now?"""
        if not self.heap:
            return False
        if len(self.heap) >= MAX_BUFFERED:
            return True
        lagging = [n for n in self.sources if n not in self.done and not self.waiting[n]]
        return not lagging or time.monotonic() - self.heap[0][4] >= WINDOW

    def next_packet(self, timeout=None):
        """The next SensorPacket, None on timeout or when every sensor's stream ended."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            for name in self.sources:
                if name not in self.done and not self.waiting[name]:
                    self._pull(name, 0)
            if self._ready():
                ts, _, name, p, _ = heapq.heappop(self.heap)
                self.waiting[name] -= 1
                self.last_ts = ts
                self.delivered += 1
                return SensorPacket(*p, name)
            if len(self.done) == len(self.sources) and not self.heap:
                return None
            if end is not None and time.monotonic() >= end:
                return None
            time.sleep(POLL)
