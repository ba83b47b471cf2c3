"""The module organizer: every connected flow of a device becomes a path in one global graph
rooted at the raw packet stream.  Identical prefixes (same functions, same arguments, same order)
are one chain of nodes, whichever flows own them; the graph compiles to one C plan that the
engine runs over each batch.
"""
import threading

from ._engine import ffi, lib
from .batch import BATCH_CAP


class Node:
    """One function instance in the global graph."""

    __slots__ = ("key", "desc", "args", "instance", "parent", "children", "owners", "index",
                 "in_slot", "out_slot", "placement", "hits_in", "hits_out", "__weakref__")

    def __init__(self, key, desc, args, instance, parent):
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


class Plan:
    """A compiled plan: the C mapi_plan plus the Python-side view of its nodes."""

    def __init__(self, nodes, nslots):
        self.nodes = nodes
        self.c = ffi.gc(lib.mapi_plan_new(len(nodes), nslots, BATCH_CAP), lib.mapi_plan_free)
        if self.c == ffi.NULL:
            raise MemoryError("cannot allocate the engine plan")
        self.n = len(nodes)
        self.python_nodes = []
        self.tick_nodes = [n for n in nodes if n.instance.tick_ns > 0]
        self.instances = [n.instance for n in nodes]
        for i, node in enumerate(nodes):
            c = self.c.nodes[i]
            inst = node.instance
            if inst.kernel is not None:
                c.fn = inst.kernel
                c.state = inst.state if inst.state is not None else ffi.NULL
            else:
                c.fn = ffi.NULL
                self.python_nodes.append(node)
            c.in_slot = node.in_slot
            c.out_slot = node.out_slot

    def harvest(self):
        """Carry this plan's hit counters into the nodes (before the plan is replaced)."""
        for i, node in enumerate(self.nodes):
            node.hits_in += self.c.nodes[i].pkts_in
            node.hits_out += self.c.nodes[i].pkts_out
            self.c.nodes[i].pkts_in = self.c.nodes[i].pkts_out = 0

    def hits(self, node):
        if 0 <= node.index < self.n and self.nodes[node.index] is node:
            c = self.c.nodes[node.index]
            return node.hits_in + c.pkts_in, node.hits_out + c.pkts_out
        return node.hits_in, node.hits_out


class Graph:
    """The global graph of one device."""

    def __init__(self):
        self.root = Node(("ROOT",), None, (), None, None)
        self.lock = threading.RLock()
        self.version = 0

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
                if anchor is not None:
                    node = Node(key, desc, args, make_instance(), anchor)
                    anchor.children.append(node)
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
                node.owners.add((fd, fid))
                out[fid] = node
                parent = node
            self.version += 1
        return out

    def detach(self, fd):
        """Drop a flow; nodes nobody owns any more are removed (and returned, to be closed)."""
        removed = []
        with self.lock:
            def walk(node):
                for child in list(node.children):
                    walk(child)
                if node is self.root:
                    return
                node.owners = {o for o in node.owners if o[0] != fd}
                if not node.owners and not node.children:
                    node.parent.children.remove(node)
                    removed.append(node)
            walk(self.root)
            self.version += 1
        return removed

    def nodes(self):
        out = []

        def walk(node):
            for c in node.children:
                out.append(c)
                walk(c)
        with self.lock:
            walk(self.root)
        return out

    def compile(self):
        """Order nodes depth-first and give each filter a selection slot (reused once its
        subtree is done, so slots = deepest filter nesting + 1)."""
        with self.lock:
            order = []
            free = []
            nslots = [1]

            def alloc():
                if free:
                    return free.pop()
                nslots[0] += 1
                return nslots[0] - 1

            def walk(node, slot):
                for child in node.children:
                    child.in_slot = slot
                    child.out_slot = alloc() if child.desc.filters else slot
                    child.index = len(order)
                    order.append(child)
                    walk(child, child.out_slot)
                    if child.out_slot != slot:
                        free.append(child.out_slot)
            walk(self.root, 0)
            return Plan(order, nslots[0])
