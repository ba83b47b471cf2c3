"""A Pythonic layer over the MAPI calls: devices and flows as objects, context managers that
close what they opened, and iterators over buffered packets.

    with mapi.OfflineDevice("trace.pcap") as dev:
        web = dev.flow()
        web.apply("BPF_FILTER", "tcp port 80")
        pkts = web.apply("PKT_COUNTER")
        buf = web.apply("TO_BUFFER")
        web.connect()
        dev.start()
        first = [p for _, p in zip(range(10), buf)]      # packets as they come
        dev.wait()
        print(pkts.value)

The plain calls (mapi.create_flow, mapi.apply_function...) stay the contract; these objects
only hold descriptors and call them.
"""
from . import api


class Function:
    """An applied function: (flow, fid)."""

    def __init__(self, flow, fid, name):
        self.flow = flow
        self.fid = fid
        self.name = name

    @property
    def ref(self):
        """The (fd, fid) pair other functions take as a reference argument."""
        return (self.flow.fd, self.fid)

    def result(self):
        return api.read_results(self.flow.fd, self.fid)

    @property
    def value(self):
        return self.result().value

    def info(self):
        return api.get_function_info(self.flow.fd, self.fid)

    def next_packet(self, timeout=None):
        return api.get_next_pkt(self.flow.fd, self.fid, timeout)

    def __iter__(self):
        """Buffered packets until the end of the stream (TO_BUFFER only)."""
        while True:
            pkt = api.get_next_pkt(self.flow.fd, self.fid)
            if pkt is None:
                return
            yield pkt

    def __repr__(self):
        return "<%s fid %d of flow %d>" % (self.name, self.fid, self.flow.fd)


class Flow:
    def __init__(self, device_name, **options):
        self.fd = api.create_flow(device_name, **options)
        self.functions = []

    def apply(self, name, *args, **kwargs):
        # a Function handle may stand for its (fd, fid) reference
        args = tuple(a.ref if isinstance(a, Function) else a for a in args)
        fid = api.apply_function(self.fd, name, *args, **kwargs)
        fn = Function(self, fid, name)
        self.functions.append(fn)
        return fn

    def connect(self):
        api.connect(self.fd)
        return self

    def close(self):
        try:
            api.close_flow(self.fd)
        except api.MapiError:
            pass

    def info(self):
        return api.get_flow_info(self.fd)

    def __getitem__(self, fid):
        return self.functions[fid - 1]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class OfflineDevice:
    def __init__(self, path, fmt=None, backend=None, **options):
        self.name = api.create_offline_device(path, fmt, backend, **options)
        self.flows = []

    def flow(self):
        f = Flow(self.name)
        self.flows.append(f)
        return f

    def start(self):
        api.start_offline_device(self.name)

    def wait(self, timeout=None):
        api.wait_offline_device(self.name, timeout)

    def run(self, timeout=None):
        """Connect every flow not yet connected, replay the file and wait for the end."""
        for f in self.flows:
            if api.get_flow_info(f.fd)["status"] == "open":
                f.connect()
        self.start()
        self.wait(timeout)

    def info(self):
        return api.get_device_info(self.name)

    def stats(self):
        return api.stats(self.name)

    def explain(self):
        from .explain import explain
        return explain(self.name)

    def close(self):
        try:
            api.delete_offline_device(self.name)
        except api.MapiError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
