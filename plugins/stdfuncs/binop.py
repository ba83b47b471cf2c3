"""BINOP(op, ref1, ref2): mapi.ADD or mapi.SUB of the current results of two functions.

ref1, ref2  (fd, fid) of functions with numeric results (u64 or float) on the same device,
            in any flows (this one included).
Result: ref1 + ref2 or ref1 - ref2, computed when read (so always consistent with the two
results at that moment; SUB may be negative, unlike MAPI's u64); None while either operand
has no value.  ts = the later of the two results' ts.
"""
import operator

from mapi._engine import lib
from mapi.constants import ADD, SUB
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance

from .bucket import ResultRef, check_ref

_OPS = {ADD: operator.add, SUB: operator.sub}


class BinOp(FunctionInstance):
    kernel = lib.mapi_pass_kernel

    def __init__(self, ctx, op, ref1, ref2):
        self.op = op
        self.left = ResultRef(ctx, ref1)
        self.right = ResultRef(ctx, ref2)

    def result(self):
        a, ta = self.left.read()
        b, tb = self.right.read()
        if a is None or b is None:
            return None, max(ta or 0, tb or 0)
        return _OPS[self.op](a, b), max(ta or 0, tb or 0)

    def info(self):
        return dict(op=self.op, ref1=(self.left.fd, self.left.fid),
                    ref2=(self.right.fd, self.right.fid))


def check(ctx, args):
    op, ref1, ref2 = args
    check_ref("BINOP", ctx, ref1, "ref1", numeric=True)
    check_ref("BINOP", ctx, ref2, "ref2", numeric=True)
    return args


DESCRIPTOR = FunctionDescriptor(
    name="BINOP",
    args=(Arg("op", "c", choices=(ADD, SUB), doc="mapi.ADD or mapi.SUB"),
          Arg("ref1", "F", doc="(fd, fid) of the left operand"),
          Arg("ref2", "F", doc="(fd, fid) of the right operand")),
    create=lambda ctx, args: BinOp(ctx, *args),
    check=check, doc=__doc__, result="u64", cost="free", shareable=True, stateful=False,
)
