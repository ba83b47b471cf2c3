"""Constants of the MAPI calls (names after MAPI 2.0)."""
# offline file formats
MFF_PCAP = "pcap"
MFF_PCAPNG = "pcapng"
MFF_DAG_ERF = "erf"
# SAMPLE modes
PERIODIC = "PERIODIC"
PROBABILISTIC = "PROBABILISTIC"
# TO_BUFFER modes
WAIT = "WAIT"
NOWAIT = "NOWAIT"
# THRESHOLD kinds
GREATER = "GREATER"
LESS = "LESS"
EQUAL = "EQUAL"
# BINOP operations
ADD = "ADD"
SUB = "SUB"

# PKTINFO fields
PKT_TS = "PKT_TS"
PKT_SIZE = "PKT_SIZE"
PKT_CAPLEN = "PKT_CAPLEN"

__all__ = ["PKT_TS", "PKT_SIZE", "PKT_CAPLEN", "MFF_PCAP", "MFF_PCAPNG", "MFF_DAG_ERF", "PERIODIC", "PROBABILISTIC", "WAIT", "NOWAIT",
           "GREATER", "LESS", "EQUAL", "ADD", "SUB"]
