"""Devices mapid offers to every client (config [devices.NAME]): a trace replayed for all who
attach flows.  Once a replay is done the next new flow gets a fresh one; the done replay stays
(retired) while flows still use it, and each client keeps meaning the replay it used.  Mixed
into the Engine."""
import logging

from mapi import api
from mapi.errors import MapiError

log = logging.getLogger("mapid.engine")


class SharedDevice:
    """A trace-replay device the server offers (config [devices.NAME]): every client may attach
    flows to it and start it; once replayed, the next new flow gets a fresh replay."""

    def __init__(self, name, spec):
        self.name = name
        self.spec = spec
        self.engine_name = None
        self.retired = set()          # earlier replays that still have flows

    def open(self):
        spec = self.spec
        self.engine_name = api.create_offline_device(spec["file"], spec.get("format") or None,
                                                     spec.get("backend") or None,
                                                     **spec.get("options", {}))
        return self.engine_name


class OfferedDevices:
    def configure_devices(self, specs):
        """(Re)declare the shared devices of the config: new ones open, gone ones close once
        no flow uses them."""
        with self.lock:
            for name, spec in specs.items():
                old = self.shared.get(name)
                if old is not None and old.spec == spec:
                    continue
                sd = SharedDevice(name, spec)
                engine_name = sd.open()
                self.aliases[engine_name] = name
                if old is not None:
                    self._retire(old, old.engine_name)
                    sd.retired = old.retired
                self.shared[name] = sd
                log.info("offering device %s: %s", name, spec["file"])
            for name in set(self.shared) - set(specs):
                sd = self.shared.pop(name)
                self._retire(sd, sd.engine_name)
                log.info("device %s is no longer offered", name)

    def _retire(self, sd, engine_name):
        sd.retired.add(engine_name)
        self._drop_retired(sd)

    def _drop_retired(self, sd):
        for engine_name in list(sd.retired):
            info = api.get_device_info(engine_name) if engine_name in api.devices() else None
            if info is None or not info["flows"]:
                sd.retired.discard(engine_name)
                if info is not None:
                    api.delete_offline_device(engine_name)
                self.aliases.pop(engine_name, None)

    def _replay_of(self, session, sd, use):
        """The replay of an offered device a client means: a new flow goes to the current
        replay (a fresh one once the last is done); starting, waiting for and looking at it
        mean the replay this client last attached a flow to or started, while that exists."""
        mine = session.replays.get(sd.name)
        if mine is not None and mine not in api.devices():
            mine = None
        if use == "flow":
            if api.get_device_info(sd.engine_name)["state"] == "done":
                self._retire(sd, sd.engine_name)      # replayed: new flows get a new replay
                self.aliases[sd.open()] = sd.name
            mine = sd.engine_name
        elif mine is None:
            mine = sd.engine_name
        if use in ("flow", "start"):
            session.replays[sd.name] = mine
        return mine

    def shutdown(self):
        with self.lock:
            shared = list(self.shared.values())
            self.shared.clear()
        for sd in shared:
            for name in [sd.engine_name, *sd.retired]:
                try:
                    api.delete_offline_device(name)
                except MapiError:
                    pass
