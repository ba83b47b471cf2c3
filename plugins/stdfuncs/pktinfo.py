"""PKTINFO(field): one field of the last packet that reached it (MAPI's PKT_TS / PKT_SIZE).

field: "PKT_TS" (timestamp, ns since the epoch), "PKT_SIZE" (wire length, bytes) or
"PKT_CAPLEN" (captured length).  Result: the value for the last packet, or None before the
first one; its ts is that packet's time."""
from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionDescriptor, FunctionInstance

PKT_TS, PKT_SIZE, PKT_CAPLEN = "PKT_TS", "PKT_SIZE", "PKT_CAPLEN"
FIELDS = {PKT_TS: lib.MAPI_PKTINFO_TS, PKT_SIZE: lib.MAPI_PKTINFO_SIZE,
          PKT_CAPLEN: lib.MAPI_PKTINFO_CAPLEN}


class PktInfo(FunctionInstance):
    kernel = lib.mapi_pktinfo_kernel

    def __init__(self, field):
        self.field = field
        self.st = ffi.new("mapi_pktinfo_state *")
        self.st.field = FIELDS[field]
        self.state = self.st

    def result(self):
        if not self.st.packets:
            return None, 0
        value = self.st.value
        if self.field == PKT_TS:
            value = ffi.cast("int64_t", value)
            value = int(value)
        return value, self.st.last_ts

    def reset(self):
        self.st.packets = 0
        self.st.value = 0

    def info(self):
        return dict(field=self.field, packets=self.st.packets)


DESCRIPTOR = FunctionDescriptor(
    name="PKTINFO",
    args=(Arg("field", "c", choices=tuple(FIELDS), doc="PKT_TS, PKT_SIZE or PKT_CAPLEN"),),
    create=lambda ctx, args: PktInfo(*args),
    doc=__doc__,
    result="u64",
    cost="free",
    shareable=True,
    stateful=True,
)
