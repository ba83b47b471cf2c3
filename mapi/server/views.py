"""What mapid shows of the engine: device, flow and function information with each client's
own view (a client other than root sees its own flows), explain with client owners, per-flow
counts and the figures the metrics endpoint exports.  Mixed into the Engine."""
import importlib

from mapi import api

mapi_explain = importlib.import_module("mapi.explain")      # the module (mapi.explain is the function)


class Views:
    def flow_counts(self, name):
        """{fd: (packets into its first function, out of its last, wire bytes in, out)} of a
        device's flows, as explain counts them (a node in hardware: the card's own counters)."""
        first, last = {}, {}
        for n in mapi_explain.explain_data(name)["nodes"]:
            for fd, fid in n["owners"]:
                if fd not in first or fid < first[fd][0]:
                    first[fd] = (fid, n["pkts_in"], n["bytes_in"])
                if fd not in last or fid > last[fd][0]:
                    last[fd] = (fid, n["pkts_out"], n["bytes_out"])
        return {fd: (first[fd][1], last[fd][1], first[fd][2], last[fd][2]) for fd in first}

    def flow_info(self, session, fd):
        self.check_flow(session, fd)
        with self.graph_lock:                   # its drops walk every node's instance
            return self.public(self._call(api.get_flow_info, fd))

    def function_info(self, session, fd, fid):
        self.check_flow(session, fd)
        return self.public(self._call(api.get_function_info, fd, fid))

    def device_info(self, session, dev):
        name = self.device(session, dev)
        info = self._call(api.get_device_info, name)
        if session.uid != 0:
            info["flows"] = [fd for fd in info["flows"] if fd in session.flows]
        return self.public(info)

    def stats(self, session, dev):
        name = self.device(session, dev)
        with self.graph_lock:
            s = self._call(api.stats, name)
        if session.uid != 0:
            s["flow_drops"] = {fd: n for fd, n in s.get("flow_drops", {}).items() if fd in session.flows}
        return self.public(s)

    def explain(self, session, dev, label):
        """explain_data with each node's owners as clients; a client other than root sees
        the nodes its own flows use."""
        name = self.device(session, dev)
        data = self._call(mapi_explain.explain_data, name)
        with self.lock:
            owners = dict(self.flows)
        nodes = []
        for n in data["nodes"]:
            if session.uid != 0 and not any(fd in session.flows for fd, _ in n["owners"]):
                continue
            n["owner_labels"] = ["%d.%d (%s)" % (fd, fid, label(owners.get(fd)))
                                 for fd, fid in n["owners"]]
            nodes.append(n)
        data["nodes"] = nodes
        return self.public(data)

    def all_devices(self):
        """[(name as clients know it, engine name)] of every device."""
        return [(self.aliases.get(n, n), n) for n in api.devices()]

    def device_metrics(self, name):
        """(info, stats, placement counts) of an engine device, for the metrics endpoint."""
        info = api.get_device_info(name)
        with self.graph_lock:
            s = api.stats(name)
        placements = {}
        for n in mapi_explain.explain_data(name)["nodes"]:
            placements[n["placement"]] = placements.get(n["placement"], 0) + 1
        return info, s, placements
