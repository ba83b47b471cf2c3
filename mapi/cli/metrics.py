"""`mapi run --metrics HOST:PORT`: the run's results for Prometheus while it lasts
(prometheus-client, imported only here; pip install 'scampi[metrics]').

Every scrape reads the results anew (the same calls as the final report), labelled by device,
flow, function id, name and the step's text:

  mapi_function_value            u64 and float results (counters, rates, meters)
  mapi_function_field            numeric fields of struct results (STATS, TO_FILE...), label field
  mapi_function_top_packets      TOP entries (label key, rank); mapi_function_top_bytes too
  mapi_function_packets_in_total / _out_total   packets that reached / left each function
  mapi_device_packets_total, mapi_device_bytes_total   what the device delivered
  mapi_drops_total               packets lost, by layer: kernel, interface, engine, flow
"""
from .flowspec import SpecError

FUNC_LABELS = ["device", "flow", "fid", "function", "spec"]


def parse_address(text):
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError(None, None, "--metrics %r: give HOST:PORT, e.g. 127.0.0.1:9108" % text)
    return host.strip("[]") or "0.0.0.0", int(port)


class _Collector:
    def __init__(self, session):
        self.session = session

    def describe(self):
        return []

    def collect(self):
        import mapi
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        value = GaugeMetricFamily("mapi_function_value", "A function's numeric result", labels=FUNC_LABELS)
        field = GaugeMetricFamily("mapi_function_field", "A numeric field of a function's "
                                  "struct result", labels=FUNC_LABELS + ["field"])
        top_p = GaugeMetricFamily("mapi_function_top_packets", "Packets of a TOP entry",
                                  labels=FUNC_LABELS + ["rank", "key"])
        top_b = GaugeMetricFamily("mapi_function_top_bytes", "Bytes of a TOP entry",
                                  labels=FUNC_LABELS + ["rank", "key"])
        p_in = CounterMetricFamily("mapi_function_packets_in", "Packets that reached a function",
                                   labels=FUNC_LABELS)
        p_out = CounterMetricFamily("mapi_function_packets_out", "Packets a function passed on",
                                    labels=FUNC_LABELS)
        dev_p = CounterMetricFamily("mapi_device_packets", "Packets the device delivered",
                                    labels=["device"])
        dev_b = CounterMetricFamily("mapi_device_bytes", "Wire bytes the device delivered",
                                    labels=["device"])
        drops = CounterMetricFamily("mapi_drops", "Packets lost, by layer",
                                    labels=["device", "layer", "flow"])
        for job in list(self.session.jobs):
            dev = job.dev
            if dev is None:
                continue
            try:
                info = mapi.get_device_info(dev)
                st = mapi.stats(dev)
            except mapi.MapiError:
                continue
            dev_p.add_metric([dev], info.get("packets") or 0)
            dev_b.add_metric([dev], info.get("bytes") or 0)
            for layer, key in (("kernel", "ps_drop"), ("interface", "ps_ifdrop"),
                               ("engine", "engine_drops")):
                drops.add_metric([dev, layer, ""], st.get(key, 0) or 0)
            for fd, n in (st.get("flow_drops") or {}).items():
                drops.add_metric([dev, "flow", str(fd)], n)
            for fi, steps in enumerate(job.flows):
                for si, step in enumerate(steps):
                    fd, fid = job.fds.get(fi), job.fids.get((fi, si))
                    if fd is None or fid is None:        # still opening
                        continue
                    labels = [dev, str(fi + 1), str(fid), step.name, step.text]
                    try:
                        r = mapi.read_results(fd, fid)
                        finfo = mapi.get_function_info(fd, fid)
                    except mapi.MapiError:       # the run is closing
                        continue
                    p_in.add_metric(labels, finfo.get("pkts_in") or 0)
                    p_out.add_metric(labels, finfo.get("pkts_out") or 0)
                    _add_result(r.value, labels, value, field, top_p, top_b)
        return [value, field, top_p, top_b, p_in, p_out, dev_p, dev_b, drops]


def _add_result(v, labels, value, field, top_p, top_b):
    if isinstance(v, bool) or v is None:
        return
    if isinstance(v, (int, float)):
        value.add_metric(labels, v)
    elif isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, (int, float)) and not isinstance(x, bool):
                field.add_metric(labels + [str(k)], x)
    elif isinstance(v, list):
        for rank, entry in enumerate(v, 1):
            if hasattr(entry, "packets") and hasattr(entry, "bytes"):
                key = str(getattr(entry, "value", rank))
                top_p.add_metric(labels + [str(rank), key], entry.packets)
                top_b.add_metric(labels + [str(rank), key], entry.bytes)


class MetricsServer:
    """An HTTP endpoint (prometheus-client's) serving the session's metrics."""

    def __init__(self, address, session):
        self.host, self.port = parse_address(address)
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            raise SpecError(None, None, "--metrics needs prometheus-client, which is not "
                            "installed: pip install 'scampi[metrics]'") from None
        self.session = session
        self.server = None

    def start(self):
        from prometheus_client import CollectorRegistry, start_http_server
        reg = CollectorRegistry(auto_describe=False)
        reg.register(_Collector(self.session))
        try:
            started = start_http_server(self.port, addr=self.host, registry=reg)
        except OSError as exc:
            raise SpecError(None, None, "--metrics %s:%d: cannot listen: %s"
                            % (self.host, self.port, exc.strerror or exc)) from None
        self.server = started[0] if isinstance(started, tuple) else None
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
