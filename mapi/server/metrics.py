"""mapid's Prometheus endpoint (`mapid --metrics HOST:PORT`): read at scrape time from the
engine and the connected clients, nothing is counted twice.

Per device: packets and bytes in, drops per layer (kernel, interface, buffers), nodes per
placement (software or a hardware unit) and per-unit hardware placement counts.  Per flow and
per client: packets and wire bytes into and out of the flow (mapid's plans count bytes,
organizer.COUNT_BYTES), bytes and packets put in its buffers, drops."""
import logging

from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger("mapid.metrics")


class ServerCollector:
    def __init__(self, directory):
        self.directory = directory

    def collect(self):
        engine = self.directory.engine
        dev_packets = CounterMetricFamily("scampi_device_packets", "Packets the device read",
                                          labels=["device"])
        dev_bytes = CounterMetricFamily("scampi_device_bytes", "Wire bytes the device read",
                                        labels=["device"])
        dev_drops = CounterMetricFamily("scampi_device_drops", "Packets dropped, per layer",
                                        labels=["device", "layer"])
        placement = GaugeMetricFamily("scampi_device_nodes", "Graph nodes per placement",
                                      labels=["device", "placement"])
        for public, name in engine.all_devices():
            try:
                info, stats, places = engine.device_metrics(name)
            except Exception as exc:         # a device deleted during the scrape
                log.debug("device %s: %s", name, exc)
                continue
            dev_packets.add_metric([public], info["packets"])
            dev_bytes.add_metric([public], info["bytes"])
            dev_drops.add_metric([public, "kernel"], stats.get("ps_drop", 0))
            dev_drops.add_metric([public, "interface"], stats.get("ps_ifdrop", 0))
            dev_drops.add_metric([public, "buffers"], sum(stats.get("flow_drops", {}).values()))
            for where, n in places.items():
                placement.add_metric([public, where], n)
        yield from (dev_packets, dev_bytes, dev_drops, placement)

        labels = ["client", "pid", "uid", "program"]
        flow_labels = labels + ["fd", "device"]
        f_in = CounterMetricFamily("scampi_flow_packets_in", "Packets into the flow", labels=flow_labels)
        f_out = CounterMetricFamily("scampi_flow_packets_out", "Packets out of the flow's last "
                                    "function", labels=flow_labels)
        f_bytes_in = CounterMetricFamily("scampi_flow_bytes_in", "Wire bytes into the flow",
                                         labels=flow_labels)
        f_bytes_out = CounterMetricFamily("scampi_flow_bytes_out", "Wire bytes out of the flow's "
                                          "last function", labels=flow_labels)
        f_buf = CounterMetricFamily("scampi_flow_buffer_packets", "Packets put in the flow's "
                                    "buffers", labels=flow_labels)
        f_bytes = CounterMetricFamily("scampi_flow_buffer_bytes", "Captured bytes put in the "
                                      "flow's buffers", labels=flow_labels)
        f_drops = CounterMetricFamily("scampi_flow_drops", "Packets the flow's buffers dropped",
                                      labels=flow_labels + ["layer"])
        c_flows = GaugeMetricFamily("scampi_client_flows", "Flows of the client", labels=labels)
        c_packets = CounterMetricFamily("scampi_client_packets", "Packets into the client's flows",
                                        labels=labels)
        c_wire = CounterMetricFamily("scampi_client_bytes", "Wire bytes into the client's flows",
                                     labels=labels)
        c_bytes = CounterMetricFamily("scampi_client_buffer_bytes", "Bytes put in the client's "
                                      "buffers", labels=labels)
        c_drops = CounterMetricFamily("scampi_client_drops", "Packets the client's buffers "
                                      "dropped, and pushed messages it did not read in time",
                                      labels=labels + ["layer"])
        clients = GaugeMetricFamily("scampi_clients", "Connected clients")
        sessions = self.directory.sessions()
        clients.add_metric([], len(sessions))
        counts = {}
        for s in sessions:
            summary = s.summary(counts)
            who = [str(s.id), str(s.pid), str(s.uid), s.program]
            c_flows.add_metric(who, len(summary["flows"]))
            c_packets.add_metric(who, summary["packets"])
            c_wire.add_metric(who, summary["bytes"])
            c_bytes.add_metric(who, summary["buffer_bytes"])
            c_drops.add_metric(who + ["buffers"], summary["drops"])
            c_drops.add_metric(who + ["socket"], s.conn.lost_total)
            for f in summary["flows"]:
                fl = who + [str(f["fd"]), f["device"]]
                f_in.add_metric(fl, f["packets_in"])
                f_out.add_metric(fl, f["packets_out"])
                f_bytes_in.add_metric(fl, f["bytes_in"])
                f_bytes_out.add_metric(fl, f["bytes_out"])
                f_buf.add_metric(fl, f["buffered"])
                f_bytes.add_metric(fl, f["buffer_bytes"])
                f_drops.add_metric(fl + ["buffers"], f["drops"])
        yield from (clients, c_flows, c_packets, c_wire, c_bytes, c_drops, f_in, f_out, f_bytes_in,
                    f_bytes_out, f_buf, f_bytes, f_drops)


def serve(address, directory):
    host, _, port = address.rpartition(":")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(directory))
    start_http_server(int(port), addr=host.strip("[]"), registry=registry)
