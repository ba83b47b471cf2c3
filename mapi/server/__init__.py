"""mapid: one SCAMPI server for every application on the machine.

It owns the devices and runs one global graph per device (the in-process engine: organizer,
mapper, devices) for all its clients, which reach it over a Unix socket with the protocol of
mapi/proto/mapi.proto (docs/protocol.md).  Start it with `mapid` or `python -m mapi.server`."""
