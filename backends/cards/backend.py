"""The backend descriptor of a card: it replays files through the card (backend=NAME) or sits
on a live interface (NAME:IFNAME); its link is another backend's source, opened through the
registry (the savefile backend, or a ring/nic capture)."""
from mapi.descriptor import BackendDescriptor
from mapi.errors import MapiError, EBADARG
from mapi.registry import get_registry

def open_link(path, fmt=None):
    """A trace file as the card's link: the savefile backend's source."""
    return get_registry().backend("savefile").open_offline(path, fmt, {})


def card_backend(card_class, name, doc, units):
    """The BackendDescriptor of a card: it replays files through the card (backend=NAME) or
    sits on a live interface (NAME:IFNAME)."""

    def open_offline(path, fmt=None, options=None):
        options = dict(options or {})
        unknown = set(options) - {"limits"}
        if unknown:
            raise MapiError(EBADARG, "%s: unknown option(s) %s (known: limits)"
                            % (name, ", ".join(sorted(unknown))), argument=sorted(unknown)[0])
        return card_class(open_link(path, fmt), options)

    def open_live(ifname, options=None):
        link, card_options = open_live_link(ifname, options, name)
        return card_class(link, card_options)

    return BackendDescriptor(name=name, doc=doc, open_offline=open_offline, open_live=open_live,
                             capabilities=dict(units=list(units)))


def open_live_link(name, options, card_name):
    """Put a card on a live interface: its link is a capture through another backend ("ring" by
    default, option link="nic" for plain AF_PACKET).  Returns (link, card options)."""
    options = dict(options or {})
    card_options = {k: options.pop(k) for k in ("limits",) if k in options}
    link_backend = options.pop("link", "ring")
    desc = get_registry().backend(link_backend)
    if desc.open_live is None or link_backend == card_name:
        raise MapiError(EBADARG, "%s: link backend %r cannot capture live" % (card_name, link_backend),
                        argument="link")
    return desc.open_live(name, options), card_options
