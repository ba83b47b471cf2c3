"""What a classic BPF program tests, as data a hardware unit can translate (Retina-style).

analyze(insns) walks every path of the program (BPF only jumps forward, so paths are finite)
with a symbolic accumulator and returns the accepting paths, each a conjunction of conditions
on packet loads:

    Cond(load=Load("abs", 12, 2), mask=0xffff, op="eq", k=0x800, positive=True)   # ethertype
    Cond(load=Load("ind", 16, 2, xbase=14), ...)      # ldxb 4*([14]&0xf); ldh [x+16]: TCP dport

A unit keeps the conditions it can express and drops the others; dropping any condition only
broadens a path, so the result is a superset filter (exact when nothing was dropped).  Paths
whose conditions contradict each other are removed, and negative conditions implied by a
positive one on the same field are simplified away (libpcap's `jeq #0x86dd` before
`jeq #0x800`), so most tcpdump filters become purely positive rules.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

MAX_PATHS = 256


@dataclass(frozen=True)
class Load:
    kind: str                 # "abs": packet[offset]; "ind": packet[X + offset]; "len": wire length
    offset: int
    size: int                 # 1, 2 or 4 bytes (0 for "len")
    xbase: Optional[int] = None   # for "ind": X = 4 * (packet[xbase] & 0xf) (IP header length)


@dataclass(frozen=True)
class Cond:
    load: Load
    mask: int                 # the accumulator was ANDed with this before the comparison
    op: str                   # "eq", "gt", "ge", "set" ((A & k) != 0); mask 0 + "eq" 0 means
                              # "the packet is long enough for this load"
    k: int
    positive: bool            # False: the path took the comparison's false branch

    def holds(self, value):
        v = value & self.mask
        r = {"eq": v == self.k, "gt": v > self.k, "ge": v >= self.k, "set": (v & self.k) != 0}[self.op]
        return r == self.positive


@dataclass
class Analysis:
    paths: Tuple[Tuple[Cond, ...], ...]   # accepting paths
    complete: bool                        # every accepting path is described exactly
    reason: str = ""                      # why not, when complete is False

    @property
    def accepts_everything(self):
        return any(len(p) == 0 for p in self.paths)


_FULL = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 0: 0xFFFFFFFF}


def analyze(insns):
    """insns: [(code, jt, jf, k)].  Returns an Analysis (complete=False if some condition is on a
    value the analysis cannot name, or the program has too many paths)."""
    state = {"complete": True, "reason": "", "too_many": False}
    memo = {}

    def unknown(why):
        if state["complete"]:
            state["complete"] = False
            state["reason"] = why

    def walk(pc, A, X):
        """Accepting paths from pc on, as tuples of conditions relative to this point."""
        key = (pc, A, X)
        if key in memo:
            return memo[key]
        out = _walk(pc, A, X)
        if len(out) > MAX_PATHS:
            state["too_many"] = True
            out = out[:MAX_PATHS + 1]
        memo[key] = out
        return out

    def branch(pc, c, jt, jf, A, X):
        taken = walk(pc + 1 + jt, A, X)
        other = walk(pc + 1 + jf, A, X)
        neg = Cond(c.load, c.mask, c.op, c.k, False)
        out = [(c,) + t for t in taken]
        if () in taken:
            # the true side accepts everything: (c and T) or (not c and F) == c or F, except
            # that evaluating c needs its bytes: keep "the field is present" (BPF rejects
            # packets too short for a load)
            present = Cond(c.load, 0, "eq", 0, True)
            out += [(present,) + f for f in other]
        else:
            out += [(neg,) + f for f in other]
        return out

    def _walk(pc, A, X):
        # A, X: ("load", Load, mask) | ("const", value) | ("iphl", offset) | None (unknown)
        while pc < len(insns):
            code, jt, jf, k = insns[pc]
            if code == 0x06:                        # ret #k
                return [()] if k else []
            if code == 0x16:                        # ret a
                if A and A[0] == "const":
                    return [()] if A[1] else []
                unknown("returns a computed value")
                return [()]
            if code in (0x20, 0x28, 0x30):          # ld/ldh/ldb [k]
                size = {0x20: 4, 0x28: 2, 0x30: 1}[code]
                A = ("load", Load("abs", k, size), _FULL[size])
            elif code in (0x40, 0x48, 0x50):        # ld/ldh/ldb [x+k]
                size = {0x40: 4, 0x48: 2, 0x50: 1}[code]
                if X and X[0] == "iphl":
                    A = ("load", Load("ind", k, size, xbase=X[1]), _FULL[size])
                else:
                    A = None
            elif code == 0xb1:                      # ldxb 4*([k]&0xf)
                X = ("iphl", k)
            elif code == 0x80:                      # ld #len
                A = ("load", Load("len", 0, 0), _FULL[0])
            elif code == 0x00:
                A = ("const", k)
            elif code == 0x01:
                X = ("const", k)
            elif code == 0x54:                      # and #k
                if A and A[0] == "load":
                    A = ("load", A[1], A[2] & k)
                elif A and A[0] == "const":
                    A = ("const", A[1] & k)
            elif code == 0x07:
                X = A
            elif code == 0x87:
                A = X
            elif code == 0x05:                      # ja
                if k & 0x80000000:                  # a backward jump (protochain): a loop
                    unknown("loops (backward jump)")
                    return [()]
                pc += 1 + k
                continue
            elif code in (0x15, 0x25, 0x35, 0x45):  # jeq/jgt/jge/jset #k
                op = {0x15: "eq", 0x25: "gt", 0x35: "ge", 0x45: "set"}[code]
                if A and A[0] == "const":
                    taken = Cond(Load("abs", 0, 1), 0xFFFFFFFF, op, k, True).holds(A[1])
                    pc += 1 + (jt if taken else jf)
                    continue
                if A and A[0] == "load":
                    return branch(pc, Cond(A[1], A[2], op, k, True), jt, jf, A, X)
                unknown("compares a computed value")
                return list(walk(pc + 1 + jt, A, X)) + list(walk(pc + 1 + jf, A, X))
            elif code in (0x60, 0x61, 0x02, 0x03):  # scratch memory
                if code == 0x60:
                    A = None
                elif code == 0x61:
                    X = None
            elif code in (0x1d, 0x2d, 0x3d, 0x4d):  # compares against X
                unknown("compares against the X register")
                return list(walk(pc + 1 + jt, A, X)) + list(walk(pc + 1 + jf, A, X))
            else:                                   # other arithmetic: A is no longer a field
                A = None
            pc += 1
        unknown("falls off the end")
        return []

    raw = walk(0, None, None)
    if state["too_many"]:
        return Analysis((), False, "more than %d paths" % MAX_PATHS)
    paths = []
    for p in raw:
        conds = ()
        for c in p:
            conds = _add(conds, c)
            if conds is None:
                break
        if conds is not None and conds not in paths:
            paths.append(conds)
    return Analysis(tuple(paths), state["complete"], state["reason"])


def _add(conds, c):
    """conds + c, simplified; None if the path became impossible."""
    same = [x for x in conds if x.load == c.load and x.mask == c.mask]
    eqs = [x for x in same + [c] if x.op == "eq" and x.positive]
    if eqs:
        value = eqs[0].k
        if any(not x.holds(value) for x in same + [c]):
            return None                 # contradiction: this path is never taken
        # every other condition on this field is implied by the equality
        return tuple(x for x in conds if not (x.load == c.load and x.mask == c.mask)) + (eqs[0],)
    if any(x == Cond(c.load, c.mask, c.op, c.k, not c.positive) for x in same):
        return None
    return tuple(conds) + (c,)
