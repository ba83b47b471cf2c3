"""The contract between the module mapper and devices with "hardware" (emulated cards, a router's
ACLs, a NIC's kernel filter).

A device advertises its units as data (:class:`HardwareUnit`).  For each node of the global
graph the mapper asks the units for an :class:`Offer`: can you run this function with these
arguments, exactly or only as a superset, and what does it cost you?  It then builds one
:class:`HardwareConfig` from every active flow and hands it to the device's ``configure``.
Packets come out of the card with per-packet tag bits (``mapi_batch.tags``): bit ``b`` set means
the packet passed hardware node ``b`` (and its hardware ancestors).  In software, a hardware
filter becomes a tag test, a superset filter a tag test followed by the software function, and a
hardware statistic a pass-through node whose result the device reads from its counters.  Only
packets some software node needs cross the (emulated) bus.

The configuration is rebuilt from scratch whenever flows come or go (as MAPI 2.0 did for the
DAG DSM), so a unit never has to support incremental updates; Assignment.key is stable across
rebuilds so a unit keeps a surviving node's counters.

Threads: the source's reader thread only reads raw packets (next_batch_into); the card's units
run in the engine thread through HardwareDevice.process(batch), under the same lock as
configure(), so tags always match the configuration the current plan was compiled for.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

MAX_HW_NODES = 64          # tag bits per packet

# Unit kinds the mapper knows how to chain
FILTER = "filter"          # keeps some packets: BPF_FILTER, SAMPLE, HASHSAMP, STR_SEARCH...
STATISTIC = "statistic"    # observes packets, keeps a result: PKT_COUNTER, BYTE_COUNTER, STATS


@dataclass
class Offer:
    """A unit's answer for one node.

    exact: the unit computes exactly what the software function would; False: a superset
    (a filter that lets through at least every packet the software filter keeps), to be refined
    in software.  demand: resources this placement uses, e.g. {"rules": 3}; the mapper checks
    them against HardwareUnit.limits.  params: whatever the unit needs to configure itself
    (opaque to the mapper).  note: one line for explain() ("2 CAM rules", "ports dropped:
    superset").
    """
    exact: bool
    demand: Dict[str, int] = field(default_factory=dict)
    params: Any = None
    note: str = ""


class HardwareUnit:
    """One unit of a device's hardware, advertised as data plus one decision method.

    name: "LUP", "STU", "DSM"...; kind: FILTER or STATISTIC; functions: names of MAPI functions
    the unit can run; limits: resource -> capacity, e.g. {"rules": 32}.
    """

    name = ""
    kind = FILTER
    functions: Tuple[str, ...] = ()
    limits: Dict[str, int] = {}
    doc = ""

    def offer(self, desc, args, device):
        """An Offer for running function `desc` with `args` here, or None (software only)."""
        return None

    def describe(self):
        return dict(name=self.name, kind=self.kind, functions=list(self.functions),
                    limits=dict(self.limits), doc=self.doc)


@dataclass
class Assignment:
    """A node placed in hardware.

    hw_id: its tag bit / slot (0..MAX_HW_NODES-1), unique per configuration.  parent_hw_id: the
    hardware node whose packets it sees (None: the raw stream).  deliver: software needs the
    packets that pass this node, so they must cross the bus.
    """
    hw_id: int
    unit: str
    function: str
    args: tuple
    offer: Offer
    parent_hw_id: Optional[int]
    deliver: bool
    key: int = 0                 # stable identity of the node across configurations
    # The node's software FunctionInstance: its C kernel and state (for a unit that re-runs the
    # kernel, or writes through it) and result().
    instance: Any = None
    # Names of the software functions that read this node's result while packets flow
    # (THRESHOLD, BUCKET, STATS... through an "F" argument).  A unit that updates its result a
    # batch ahead of software must refuse such a node (HardwareError): it stays in software.
    read_by: Tuple[str, ...] = ()


@dataclass
class HardwareConfig:
    """Everything the device's hardware should run, rebuilt from all active flows.

    deliver_all: some software node needs every packet (a flow whose first node runs in
    software), so the whole stream crosses the bus.
    """
    assignments: List[Assignment] = field(default_factory=list)
    deliver_all: bool = True
    generation: int = 0


class HardwareError(Exception):
    """A device refused a configuration (over a limit, unit failure).  The mapper logs it and
    falls back to software for the nodes concerned; nothing is dropped silently."""

    def __init__(self, message, hw_ids=()):
        super().__init__(message)
        self.hw_ids = tuple(hw_ids)


class HardwareDevice:
    """What a PacketSource with hardware provides (besides the PacketSource ops).

    units() -> [HardwareUnit]; configure(HardwareConfig) applies a whole configuration
    atomically or raises HardwareError (nothing applied); process(batch) runs the units over a
    raw batch and returns the batch that crosses the bus (tags and seq filled; it may be the
    same object or one the device owns, valid until the next process() call);
    hw_result(hw_id) -> (value, ts_ns) for a STATISTIC node (the same value type the software
    function returns); hw_info() -> dict for get_device_info/explain (bus packets and bytes,
    unit occupancy, per-node hits).  The engine calls configure() and process() from its own
    thread, never concurrently.
    """

    def units(self):
        return []

    def process(self, batch):
        return batch

    def configure(self, config):
        raise HardwareError("this device has no configurable hardware")

    def hw_result(self, hw_id):
        raise KeyError(hw_id)

    def hw_info(self):
        return {}
