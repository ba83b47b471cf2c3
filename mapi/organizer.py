"""The module organizer: every connected flow of a device becomes a path in one global graph
rooted at the raw packet stream.  Identical prefixes (same functions, same arguments, same order)
are one chain of nodes, whichever flows own them; the graph compiles to one C plan that the
engine runs over each batch.
"""
import itertools
import threading

from ._engine import ffi, lib
from .batch import BATCH_CAP

_serial = itertools.count(1)


class Node:
    """One function instance in the global graph."""

    __slots__ = ("key", "desc", "args", "instance", "parent", "children", "owners", "index",
                 "in_slot", "out_slot", "placement", "hits_in", "hits_out", "bytes_in", "bytes_out",
                 "serial", "hw_id",
                 "hw_exact", "hw_note", "carry", "__weakref__")

    def __init__(self, key, desc, args, instance, parent):
        self.serial = next(_serial)      # creation order: older nodes get hardware first
        self.hw_id = None                # tag bit / slot when the mapper placed it in hardware
        self.hw_exact = False
        self.hw_note = ""
        self.carry = None                # result accumulated before a placement change
        self.key = key
        self.desc = desc
        self.args = args
        self.instance = instance
        self.parent = parent
        self.children = []
        self.owners = set()          # (fd, fid) pairs that reference this node
        self.index = -1              # position in the compiled plan
        self.in_slot = self.out_slot = 0
        self.placement = "software"
        self.hits_in = self.hits_out = 0   # counts carried over from earlier plans
        self.bytes_in = self.bytes_out = 0  # wire bytes, likewise (plans that count bytes)

    @property
    def name(self):
        return self.desc.name if self.desc else "ROOT"

    def shared(self):
        return len({fd for fd, _ in self.owners}) > 1


def node_key(desc, args):
    return (desc.name, _freeze(args))


def _freeze(v):
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


# Plans built from now on also count wire bytes per node (mapid turns it on for its metrics;
# the embedded engine does not pay for the extra pass over each selection)
COUNT_BYTES = False

# Roles of plan entries: a node runs as its software kernel, or stands in for hardware
SW, HW_TAG, HW_STAT = "software", "hardware-tag", "hardware-statistic"


class Plan:
    """A compiled plan: the C mapi_plan plus the Python-side view of its entries.  A node has
    one entry, or two for a superset filter in hardware (the tag test, then the software
    refinement)."""

    def __init__(self, entries, nslots):
        # entries: [(node, role, in_slot, out_slot, in_batch, out_batch, subtree_end)]
        self.entries = entries
        self.nodes = []                  # distinct nodes, plan order
        self.c = ffi.gc(lib.mapi_plan_new(len(entries), nslots, BATCH_CAP), lib.mapi_plan_free)
        if self.c == ffi.NULL:
            raise MemoryError("cannot allocate the engine plan")
        self.c.count_bytes = 1 if COUNT_BYTES else 0
        self.n = len(entries)
        self.keep = []                   # tag states referenced by the C plan
        self.first = {}                  # id(node) -> first entry index
        self.last = {}                   # id(node) -> last entry index
        for i, (node, role, in_slot, out_slot, in_batch, out_batch, end) in enumerate(entries):
            c = self.c.nodes[i]
            c.in_batch, c.out_batch, c.subtree_end = in_batch, out_batch, end
            inst = node.instance
            if role == SW and in_batch != out_batch:          # a producer (derived batch)
                c.made = inst.made
                c.drain = inst.made_drain if inst.made_drain is not None else ffi.NULL
            if role == HW_TAG:
                st = ffi.new("mapi_tag_state *", {"mask": 1 << node.hw_id})
                self.keep.append(st)
                c.fn, c.state = lib.mapi_tag_kernel, st
            elif role == HW_STAT:
                c.fn, c.state = lib.mapi_pass_kernel, ffi.NULL
            elif inst.kernel is not None:
                c.fn = inst.kernel
                c.state = inst.state if inst.state is not None else ffi.NULL
            else:
                c.fn = ffi.NULL
            c.in_slot = in_slot
            c.out_slot = out_slot
            if id(node) not in self.first:
                self.first[id(node)] = i
                self.nodes.append(node)
            self.last[id(node)] = i
        # (node, its first entry, its last entry): where harvest finds its counts
        self.spans = [(n, self.first[id(n)], self.last[id(n)]) for n in self.nodes]
        self.tick_nodes = [n for n in self.nodes if n.instance.tick_ns > 0]
        self.instances = [n.instance for n in self.nodes]
        self.producers = [i for i, e in enumerate(entries) if e[4] != e[5]]
        self._linktypes = {}             # (id(node), device link type) -> its input's

    def input_linktype(self, node, linktype):
        """Link type of the packets that reach node when the device's batches carry
        `linktype`: a producer above it (desc.derives) hands on its own."""
        key = (id(node), linktype)
        lt = self._linktypes.get(key)
        if lt is None:
            lt = self._linktypes[key] = self._input_linktype(node, linktype)
        return lt

    def _input_linktype(self, node, linktype):
        chain = []
        p = node.parent
        while p is not None and p.desc is not None:
            chain.append(p)
            p = p.parent
        for p in reversed(chain):
            if p.desc.derives is not None:
                linktype = p.desc.derives(linktype, p.args)[0]
        return linktype

    def entry_node(self, i):
        return self.entries[i][0]

    def harvest(self):
        """Carry this plan's hit counters into the nodes (before the plan is replaced)."""
        if not self.n:
            return
        out = ffi.new("uint64_t[]", 4 * self.n)
        lib.mapi_plan_take_counters(self.c, out)
        v = ffi.unpack(out, 4 * self.n)
        for node, f, last in self.spans:
            node.hits_in += v[4 * f]
            node.hits_out += v[4 * last + 1]
            node.bytes_in += v[4 * f + 2]
            node.bytes_out += v[4 * last + 3]

    def _hits_here(self, node):
        f, l = self.first.get(id(node)), self.last.get(id(node))
        if f is None:
            return 0, 0
        return self.c.nodes[f].pkts_in, self.c.nodes[l].pkts_out

    def hits(self, node):
        pin, pout = self._hits_here(node)
        return node.hits_in + pin, node.hits_out + pout

    def _bytes_here(self, node):
        f, l = self.first.get(id(node)), self.last.get(id(node))
        if f is None:
            return 0, 0
        return self.c.nodes[f].bytes_in, self.c.nodes[l].bytes_out

    def byte_hits(self, node):
        """Wire bytes into and out of node (0 unless plans count bytes, COUNT_BYTES)."""
        bin_, bout = self._bytes_here(node)
        return node.bytes_in + bin_, node.bytes_out + bout


COST_RANK = {"free": 0, "low": 1, "high": 2}


def commutes(desc):
    """Stateless filters commute with each other; anything with state, anything that changes
    packets, anything watching another function and a declared barrier is a barrier."""
    return desc.filters and not desc.stateful and not desc.modifies and not desc.anchor \
        and not desc.barrier


def order_chain(chain, graph):
    """Sort each run of commuting filters by cost class, then by the selectivity measured on an
    identical node already in the graph (most selective first), then canonically so that two
    flows asking for the same filters in another order share one prefix."""
    def rank(entry):
        desc, args = entry[1], entry[2]
        key = node_key(desc, args)
        return (COST_RANK.get(desc.cost, 1), graph.selectivity_of(key, 0.5), repr(key))
    out, run = [], []
    for entry in chain:
        if commutes(entry[1]) and entry[4] is None:
            run.append(entry)
            continue
        out.extend(sorted(run, key=rank))
        run = []
        out.append(entry)
    out.extend(sorted(run, key=rank))
    return out


def _depth(node):
    depth = 0
    while node.parent is not None:
        depth += 1
        node = node.parent
    return depth


class Graph:
    """The global graph of one device."""

    def __init__(self):
        self.root = Node(("ROOT",), None, (), None, None)
        self.lock = threading.RLock()
        self.version = 0
        # (version, nodes in preorder): a connect walks the graph three times (ordering,
        # admission, load) at one version; the walk is made once per version
        self._walked = (-1, ())
        # node key -> its nodes, oldest first: what ranks a filter (selectivity_of) and what
        # sums the graph's cost (every_node) without walking the whole graph at each connect
        self._by_key = {}

    def attach(self, fd, chain, running=False):
        """Insert a flow's chain [(fid, desc, args, make_instance, anchor)], sharing identical
        prefixes.  An entry with an anchor node hangs under that node (never shared) and does
        not move the flow's own chain along.  Once packets flow (`running`), a stateful node has history the new flow did
        not ask for, so only stateless nodes are shared then.  Returns {fid: node}."""
        out = {}
        with self.lock:
            parent = self.root
            sharing = True
            for fid, desc, args, make_instance, anchor in chain:
                key = node_key(desc, args)
                if isinstance(anchor, tuple):          # ("own", fid): earlier in this chain
                    anchor = out[anchor[1]]
                if anchor is not None:
                    node = Node(key, desc, args, make_instance(), anchor)
                    anchor.children.append(node)
                    self._by_key.setdefault(key, []).append(node)
                    node.owners.add((fd, fid))
                    out[fid] = node
                    continue
                node = None
                if sharing and desc.shareable and not (running and desc.stateful):
                    node = next((c for c in parent.children if c.key == key and c.desc.shareable), None)
                if node is None:
                    sharing = False
                    node = Node(key, desc, args, make_instance(), parent)
                    parent.children.append(node)
                    self._by_key.setdefault(key, []).append(node)
                node.owners.add((fd, fid))
                out[fid] = node
                parent = node
            self.version += 1
        return out

    def detach(self, fd, nodes=None):
        """Drop a flow; nodes nobody owns any more are removed (and returned, to be closed).
        A removed node lets go of its parent, so nothing of it stays linked into the graph.
        nodes: the flow's own (attach's {fid: node} values; only they name it as an owner), so
        that the walk is the flow's, not the whole graph's."""
        removed = []
        with self.lock:
            if nodes is None:
                walk = reversed(self._preorder())       # children before their parent
            else:
                walk = sorted(set(nodes), key=_depth, reverse=True)
            for node in walk:
                node.owners = {o for o in node.owners if o[0] != fd}
                if not node.owners and not node.children:
                    node.parent.children.remove(node)
                    node.parent = None
                    same = self._by_key.get(node.key)
                    if same is not None:
                        same.remove(node)
                        if not same:
                            del self._by_key[node.key]
                    removed.append(node)
            self.version += 1
        return removed

    def _preorder(self):
        """Every node but the root, depth-first, parents before children, in child order.
        (Walks are loops, not recursive closures: a closure that calls itself is a reference
        cycle left for the garbage collector on every call.)"""
        out = []
        stack = list(reversed(self.root.children))
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out

    def selectivity_of(self, key, default=None):
        """Packets out / packets in of the oldest node of `key` that has seen packets, as of
        the last plan change (its hit counters); `default` when none has."""
        with self.lock:
            for n in self._by_key.get(key, ()):
                if n.hits_in:
                    return n.hits_out / n.hits_in
        return default

    def selectivity(self):
        """{node key: selectivity_of(key)} of the keys whose nodes have seen packets."""
        with self.lock:
            out = {key: self.selectivity_of(key) for key in self._by_key}
        return {k: v for k, v in out.items() if v is not None}

    def every_node(self):
        """Every node but the root, in no particular order (no walk of the graph)."""
        with self.lock:
            return [n for same in self._by_key.values() for n in same]

    def nodes(self):
        """Every node but the root in preorder (a tuple shared until the graph changes)."""
        with self.lock:
            version, walked = self._walked
            if version != self.version:
                walked = tuple(self._preorder())
                self._walked = (self.version, walked)
            return walked

    def compile(self):
        """Order nodes depth-first and give each filter a selection slot (reused once its
        subtree is done, so slots = deepest filter nesting + 2).  Nodes the mapper placed in
        hardware become tag tests or pass-through stand-ins.  A producer (an instance that
        makes its own batch: reassembled datagrams, stream chunks, records) gives its subtree
        that batch to read.  Each entry: (node, role, in_slot, out_slot, in_batch, out_batch,
        subtree end)."""
        with self.lock:
            slots = _SlotAllocator()
            entries = []
            self._compile_children(self.root, 0, 0, entries, slots)
            return Plan([tuple(e) for e in entries], slots.count)

    def _compile_children(self, node, slot, batch, entries, slots):
        # recursion through a method, not a closure calling itself (no reference cycle)
        for child in node.children:
            child.in_slot = slot
            child.index = len(entries)
            first = len(entries)
            out_batch = batch
            extra = []
            if child.hw_id is not None and child.desc.filters:
                tag_out = slots.alloc()
                entries.append([child, HW_TAG, slot, tag_out, batch, batch])
                if child.hw_exact:
                    child.out_slot = tag_out
                else:                     # superset in hardware, refined here
                    child.out_slot = slots.alloc()
                    entries.append([child, SW, tag_out, child.out_slot, batch, batch])
                    extra.append(tag_out)
            elif child.hw_id is not None:
                child.out_slot = slot
                entries.append([child, HW_STAT, slot, slot, batch, batch])
            elif child.instance.made is not None:
                # a producer: its children read the batch it makes (entry index + 1)
                child.out_slot = slots.alloc()
                out_batch = len(entries) + 1
                entries.append([child, SW, slot, child.out_slot, batch, out_batch])
            else:
                child.out_slot = slots.alloc() if child.desc.filters else slot
                entries.append([child, SW, slot, child.out_slot, batch, batch])
            self._compile_children(child, child.out_slot, out_batch, entries, slots)
            for e in entries[first:first + 1 + len(extra)]:
                e.append(len(entries))       # subtree end
            slots.free.extend(extra)
            if child.out_slot != slot:
                slots.free.append(child.out_slot)


class _SlotAllocator:
    """Selection-vector slots of a plan: slot 0 holds every packet; freed slots are reused."""

    def __init__(self):
        self.free = []
        self.count = 1

    def alloc(self):
        if self.free:
            return self.free.pop()
        self.count += 1
        return self.count - 1
