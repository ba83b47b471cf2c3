"""Protocol and service names for people (TOP's entry.text), from the system's /etc/protocols
and /etc/services (netbase) as tcpdump and tshark name them; numbers stay numbers without them."""
import functools
import socket

# the few that matter most, for systems without /etc/protocols
_PROTOCOLS = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp",
              51: "ah", 58: "ipv6-icmp", 89: "ospf", 132: "sctp"}


@functools.lru_cache(maxsize=1)
def _protocols():
    names = dict(_PROTOCOLS)
    try:
        with open("/etc/protocols") as f:
            for line in f:
                words = line.split("#", 1)[0].split()
                if len(words) >= 2 and words[1].isdigit():
                    names[int(words[1])] = words[0]
    except OSError:
        pass
    return names


def proto_name(number):
    """6 -> "tcp"; an unnamed protocol stays its number as text."""
    return _protocols().get(number, str(number))


@functools.lru_cache(maxsize=4096)
def service_name(proto, port):
    """("tcp", 80) -> "http"; None when the system does not name it."""
    try:
        return socket.getservbyport(port, proto)
    except (OSError, OverflowError, TypeError):
        return None


def port_text(proto, port):
    """"tcp/80 http", "udp/5353"; proto None (a port of any transport): "80 http"."""
    name = service_name(proto, port) if proto else (service_name("tcp", port) or service_name("udp", port))
    head = "%s/%d" % (proto, port) if proto else str(port)
    return "%s %s" % (head, name) if name else head
