"""Admission control: per-principal quotas and each device's CPU capacity.

Quotas are counted per *level* of a credential: level 0 is the principal (every token issued to
it, or the uid for a grant), level i the block i of an attenuated token (everything held under
that block, by whoever holds a token derived from it).  A request is checked at every level
that sets a limit, so a delegate's quota is carved out of its delegator's.

Capacity: a device has a CPU budget (config; a fraction of one core) and a packet rate (config,
or measured while it runs).  Each node of its global graph costs its cost class's calibrated ns
per packet times the packets that reach it per second: the device's rate times the share that
passes the filters above it (measured on the running graph; 1 before anything was measured).
A node shared by several flows is charged once; a connect is admitted when the nodes it would
add fit into what is left."""
import threading
import time
import weakref

from mapi import api
from mapi.errors import ELIMIT
from mapi.organizer import node_key, order_chain

from .policy import Refusal

MIN_MEASURED = 1000            # packets a node must have seen before its share counts
SHARE_REFRESH = 0.5            # seconds a node's measured share is reused for


class Ledger:
    """Live reservations in memory (the database holds the durable copy), with each level's
    running totals (a quota check reads one number, not every reservation)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = {}                 # reservation id -> (levels, amounts)
        self.totals = {}                # (level, quota) -> sum over the reservations

    def _count(self, levels, amounts, sign):
        for lv in set(levels):
            for quota, n in amounts.items():
                key = (lv, quota)
                self.totals[key] = self.totals.get(key, 0) + sign * n

    def add(self, rid, levels, amounts):
        with self.lock:
            self.remove_locked(rid)
            self.items[rid] = (list(levels), dict(amounts))
            self._count(levels, amounts, 1)

    def update(self, rid, amounts):
        with self.lock:
            levels, old = self.items[rid]
            self._count(levels, old, -1)
            self.items[rid] = (levels, dict(amounts))
            self._count(levels, amounts, 1)

    def remove(self, rid):
        with self.lock:
            self.remove_locked(rid)

    def remove_locked(self, rid):
        item = self.items.pop(rid, None)
        if item is not None:
            self._count(item[0], item[1], -1)

    def usage(self, level, quota):
        with self.lock:
            return self.totals.get((level, quota), 0)


class Capacity:
    def __init__(self, costs, config):
        self.costs = dict(costs)            # cost class -> ns per packet
        self.configure(config)
        self.lock = threading.Lock()        # one admission decision at a time
        # device -> (when, {node serial: cost x share}); serials are never reused, and the
        # map is dropped each SHARE_REFRESH (a weak map per node cost a connect 0.3 ms with
        # 250 flows on the device)
        self._shares = weakref.WeakKeyDictionary()

    def configure(self, config):
        self.default_budget = float(config.get("cpu_budget", 1.0))
        self.default_rate = float(config.get("packet_rate", 1e6))
        self.devices = dict(config.get("devices", {}))

    def budget(self, public):
        return float(self.devices.get(public, {}).get("cpu_budget", self.default_budget))

    def rate(self, public, device):
        spec = self.devices.get(public, {})
        if "packet_rate" in spec:
            return float(spec["packet_rate"])
        elapsed = _running_seconds(device)
        if elapsed >= 1.0 and device.packets:
            return device.packets / elapsed
        return self.default_rate

    def node_cost(self, desc):
        return self.costs.get(desc.cost, self.costs.get("low", 10.0)) * 1e-9

    # --- the load of a device ----------------------------------------------------------------
    def load(self, device, rate):
        """CPU seconds per second the device's graph uses now: Σ node cost × its packet rate.
        A node's cost × share is measured at most every SHARE_REFRESH seconds (a connect walks
        the graph's nodes, it does not re-read every node's counters)."""
        now = time.monotonic()
        cached = self._shares.get(device)
        if cached is None or now - cached[0] > SHARE_REFRESH:
            cached = self._shares[device] = (now, {})
        per_node = cached[1]
        total = 0.0
        for node in device.graph.every_node():
            c = per_node.get(node.serial)
            if c is None:
                c = per_node[node.serial] = self.node_cost(node.desc) * _share_in(device, node)
            total += c
        return total * rate

    def new_nodes(self, fd):
        """[(descriptor, share of packets reaching it)] of the nodes connecting flow fd would add
        to its device's graph: the organizer's own ordering and sharing rules, walked without
        changing anything."""
        flow = api._flow(fd, "open")
        device = flow.device
        chain = [(fid, desc, args, None, _anchor(desc, args)) for fid, desc, args in flow.functions]
        chain = order_chain(chain, device.graph)
        out = []
        parent, sharing = device.graph.root, True
        share = 1.0
        running = device.running
        for fid, desc, args, _, anchor in chain:
            if anchor is not None:
                out.append((desc, share))
                continue
            node = None
            if sharing and desc.shareable and not (running and desc.stateful):
                key = node_key(desc, args)
                node = next((c for c in parent.children if c.key == key and c.desc.shareable), None)
            if node is None:
                sharing = False
                if parent is not None and parent is not device.graph.root:
                    share = _share_out(device, parent)
                out.append((desc, share))
                parent = None
            else:
                parent = node
        return device, out

    def admit(self, fd, public):
        """Refusal (ELIMIT) naming the device's budget and the numbers when connecting fd would
        exceed it; returns (cpu the flow adds, cpu in use before) otherwise."""
        device, new = self.new_nodes(fd)
        budget = self.budget(public)
        rate = self.rate(public, device)
        need = sum(self.node_cost(d) * rate * s for d, s in new)
        used = self.load(device, rate)
        if new and used + need > budget:
            names = ", ".join("%s (%s, %.1f ns/pkt)" % (d.name, d.cost, self.node_cost(d) * 1e9)
                              for d, _ in new)
            raise Refusal(ELIMIT, "connect flow %d: capacity of device %s exceeded: the flow "
                          "adds %d nodes (%s) costing %.3f CPU at %.0f packets/s; %.3f of the "
                          "device's budget of %.3f CPU is in use, %.3f is left"
                          % (fd, public, len(new), names, need, rate, used, budget,
                             max(0.0, budget - used)),
                          "capacity %s: need %.3f, used %.3f, budget %.3f" % (public, need, used,
                                                                              budget),
                          argument="fd")
        return need, used


def _anchor(desc, args):
    if not desc.anchor:
        return None
    return args[[a.name for a in desc.args].index(desc.anchor)]


def _running_seconds(device):
    if device.first_ts is None or device.last_ts is None:
        return 0.0
    return (device.last_ts - device.first_ts) / 1e9


def _hits(device, node):
    plan = device.plan
    return plan.hits(node) if plan is not None else (node.hits_in, node.hits_out)


def _share_in(device, node):
    """Share of the device's packets that reach node (1 until measured)."""
    if device.packets < MIN_MEASURED:
        return 1.0
    pin, _ = _hits(device, node)
    return min(1.0, pin / device.packets)


def _share_out(device, node):
    pin, pout = _hits(device, node)
    if device.packets < MIN_MEASURED or pin < MIN_MEASURED:
        return _share_in(device, node)
    return min(1.0, pout / device.packets)
