"""What a function placed after packet producers (reassembly, cooking, decapsulation...) in its
flow sees as its device: the link type and snaplen they hand on."""
from .descriptor import PacketSource


class DerivedView:
    """The device as a function placed after producers in its flow sees it: the link type and
    snaplen of what they hand on (and no link-layer details of the source when that changed).
    Everything else is the device's."""

    def __init__(self, device, producers):
        self._device = device
        self._producers = producers          # [(descriptor, args)] in flow order

    def _derived(self):
        lt, snap = self._device.linktype, self._device.snaplen
        for desc, args in self._producers:
            lt2, snap2 = desc.derives(lt, args)
            if lt2 != lt:
                snap = 262144
            lt, snap = lt2, (snap if snap2 is None else snap2)
        return lt, snap

    @property
    def linktype(self):
        return self._derived()[0]

    @property
    def snaplen(self):
        return self._derived()[1]

    @property
    def source(self):
        if self.linktype == self._device.linktype:
            return self._device.source
        return PacketSource()               # no header details of another link layer

    def __getattr__(self, name):
        return getattr(self._device, name)


def device_for(device, functions):
    """What a function after `functions` [(descriptor, args)] of its flow sees as its device."""
    producers = [(d, a) for d, a in functions if d.derives is not None]
    return DerivedView(device, producers) if producers else device
