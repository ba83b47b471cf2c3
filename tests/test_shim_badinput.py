"""Bad input through the libpcap drop-in: the tools exit with the same status and say the same
thing as on the stock libpcap (file not found, unknown format, truncated records, bad filters,
unknown devices, unwritable output), and nothing crashes."""
import os
import shutil
import struct
import tempfile

import pytest

from helpers import sample
from helpers.shim_modes import shim_server_fixture
from scampi.libpcap_shim import testing

shim_server = shim_server_fixture()

GOOD = sample("pcap/PcapPlusPlus__DnsPackets.pcap")


@pytest.fixture(scope="module")
def files():
    d = tempfile.mkdtemp(prefix="shim-bad-")
    os.chmod(d, 0o755)
    src = GOOD.read_bytes()
    cap = struct.unpack("<I", src[32:36])[0]
    first = 24 + 16 + cap
    made = {
        "empty": b"",
        "garbage": bytes((i * 7919 + 13) % 251 for i in range(4096)),
        "header-cut": src[:20],
        "record-header-cut": src[:first + 7],
        "record-data-cut": src[:first + 16 + 3],
        "caplen-insane": src[:32] + struct.pack("<I", 0x7fffffff) + src[36:],
        "gzip": b"\x1f\x8b\x08\x00" + bytes(60),
    }
    paths = {}
    for name, data in made.items():
        paths[name] = os.path.join(d, name + ".pcap")
        with open(paths[name], "wb") as f:
            f.write(data)
    paths["bad-version"] = str(sample("pcap/libpcap__pcap-invalid-version-2.pcap"))
    paths["pcapng-bad-version"] = str(sample("pcap/libpcap__pcapng-invalid-vers-1.pcapng"))
    paths["pcapng-bad-block"] = str(sample("pcap/libpcap__shb-option-too-long.pcapng"))
    yield paths
    shutil.rmtree(d, ignore_errors=True)


def same(argv, server, **kw):
    if testing.tool(argv[0]) is None:
        pytest.skip("%s is not installed" % argv[0])
    stock = testing.run(argv, False, **kw)
    shim = testing.run(argv, True, server=server, **kw)
    assert shim.returncode == stock.returncode, (stock, shim)
    assert shim.stdout == stock.stdout
    assert shim.stderr == stock.stderr
    assert shim.returncode >= 0, "killed by a signal"
    return stock


@pytest.mark.parametrize("name", ["empty", "garbage", "header-cut", "record-header-cut",
                                  "record-data-cut", "caplen-insane", "gzip", "bad-version",
                                  "pcapng-bad-version", "pcapng-bad-block"])
def test_tcpdump_damaged_file(files, name, shim_server):
    stock = same(["tcpdump", "-nr", files[name]], shim_server)
    assert stock.returncode == 1
    assert stock.stderr.startswith(b"tcpdump: ") or b"\ntcpdump: " in stock.stderr


@pytest.mark.parametrize("argv", [
    ["tcpdump", "-nr", "/nonexistent/file.pcap"],
    ["tcpdump", "-nr", str(GOOD), "tcp port"],
    ["tcpdump", "-nr", str(GOOD), "ether host nonsense.invalid"],
    ["tcpdump", "-nr", str(GOOD), "wlan host 00:11:22:33:44:55"],
    ["tcpdump", "-nr", str(GOOD), "-y", "NOSUCHDLT"],
    ["tcpdump", "-nr", str(GOOD), "-y", "RAW"],
    ["tcpdump", "-r", str(GOOD), "-w", "/nonexistent/dir/out.pcap", "-Z", "root"],
    ["tcpdump", "-i", "nosuchdev0", "-c", "1"],
    ["tcpdump", "-d", "-y", "EN10MB", "ip6 protochain"],
], ids=["no-file", "syntax", "unknown-host", "wrong-link-type", "unknown-dlt", "other-dlt",
        "unwritable-output", "unknown-device", "incomplete-expr"])
def test_tcpdump_bad_arguments(argv, shim_server):
    stock = same(argv, shim_server)
    if "-y" not in argv and "wlan" not in argv[-1]:
        assert stock.returncode == 1


@pytest.mark.parametrize("tool", [["ngrep", "-q", "-I"], ["tcpflow", "-r"], ["p0f", "-r"],
                                  ["softflowd", "-r"]], ids=lambda t: t[0])
def test_tools_damaged_file(files, tool, shim_server):
    stock = same(tool + [files["garbage"]], shim_server, cwd=tempfile.gettempdir())
    assert stock.returncode != 0
