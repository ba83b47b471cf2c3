"""A Pythonic layer over the MAPI calls: devices and flows as objects, context managers that
close what they opened, and iterators over buffered packets.

    with mapi.OfflineDevice("trace.pcap") as dev:
        web = dev.flow("BPF_FILTER('tcp port 80')")     # or build it with .apply()
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
    def __init__(self, device_name, spec=None, **options):
        self.fd = api.create_flow(device_name, **options)
        self.functions = []
        if spec:
            for name, args in parse_spec(spec):
                self.apply(name, *args)

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

    def flow(self, spec=None):
        f = Flow(self.name, spec)
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


def parse_spec(spec):
    """'BPF_FILTER("tcp port 80") PKT_COUNTER' -> [("BPF_FILTER", ("tcp port 80",)), ("PKT_COUNTER", ())].

    Calls are separated by white space; arguments are Python literals (strings, numbers, lists)
    or the names of MAPI constants (PERIODIC, WAIT, ...).  No eval."""
    import ast
    from . import constants
    out = []
    for call in _split_calls(spec):
        node = ast.parse(call, mode="eval").body
        if isinstance(node, ast.Name):
            out.append((node.id, ()))
            continue
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.keywords:
            raise api.MapiError(1005, "cannot read %r as a function call like NAME(arg, ...)" % call)
        args = []
        for a in node.args:
            if isinstance(a, ast.Name) and hasattr(constants, a.id):
                args.append(getattr(constants, a.id))
            else:
                try:
                    args.append(ast.literal_eval(a))
                except ValueError:
                    raise api.MapiError(1005, "argument %s of %s is not a literal or a MAPI constant"
                                        % (ast.unparse(a), node.func.id)) from None
        out.append((node.func.id, tuple(args)))
    return out


def _split_calls(spec):
    """Split at white space outside brackets and quotes."""
    calls, cur, depth, quote = [], [], 0, None
    for ch in spec:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch.isspace() and depth == 0:
            if cur:
                calls.append("".join(cur))
                cur = []
            continue
        cur.append(ch)
    if quote or depth:
        raise api.MapiError(1005, "unbalanced quotes or brackets in %r" % spec)
    if cur:
        calls.append("".join(cur))
    return calls
