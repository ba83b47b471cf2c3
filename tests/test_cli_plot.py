"""`mapi plot` / `mapi run --plot`: the PNG renders (size, drawn pixels), and what it plots is
the interval values of the run (the lines' data equal the --json rows, themselves checked
against tshark in test_cli_intervals)."""
import json

import pytest

from helpers import generated
from helpers.cli import run_cli

pytest.importorskip("matplotlib", reason="plots need matplotlib (make test installs it)")
from PIL import Image  # noqa: E402  (matplotlib depends on pillow)

MIXED = generated("mixed.pcap")
FLOWS = ['BPF_FILTER("tcp port 80") PKT_COUNTER BYTE_COUNTER', 'BPF_FILTER("udp") PKT_COUNTER',
         'BPF_FILTER("ip") BIT_RATE("1s")']


def drawn_fraction(path):
    img = Image.open(path).convert("L")
    hist = img.histogram()
    return 1 - hist[255] / sum(hist), img.size


def test_plot_renders_the_interval_values(tmp_path):
    png = tmp_path / "run.png"
    code, out, err = run_cli("run", "-r", MIXED, "--interval", "1s", "--json", "--plot", png, *FLOWS)
    assert code == 0, err
    assert "16 intervals plotted into %s" % png in err
    frac, size = drawn_fraction(png)
    assert size == (1100, 750) and 0.02 < frac < 0.5
    rows = [json.loads(line) for line in out.splitlines()][:-1]
    assert len(rows) == 16

    # the same rows drawn again from the JSON: the figure's lines hold exactly those values
    from mapi.cli.plot import PlotSink
    sink = PlotSink(tmp_path / "again.png")
    for r in rows:
        sink.add(r)
    fig = sink.draw(10 ** 9, labels={i + 1: f for i, f in enumerate(FLOWS)})
    ax_p, ax_b, ax_r = fig.axes
    value = lambda r, flow, name: next(f["value"] for f in r["flows"][flow - 1]["functions"]  # noqa
                                       if f["name"] == name)
    assert [list(l.get_ydata()) for l in ax_p.lines] == [
        [value(r, 1, "PKT_COUNTER") for r in rows], [value(r, 2, "PKT_COUNTER") for r in rows],
        [r["flows"][2]["functions"][-1]["pkts"] for r in rows]]
    assert [list(l.get_ydata()) for l in ax_b.lines] == [[value(r, 1, "BYTE_COUNTER") for r in rows]]
    # rates: bits/s of the flow with bytes, packets/s of the one without, BIT_RATE as measured
    rate = [list(l.get_ydata()) for l in ax_r.lines]
    assert rate[0] == [8 * value(r, 1, "BYTE_COUNTER") for r in rows]
    assert rate[1] == [value(r, 2, "PKT_COUNTER") for r in rows]
    bit_rate = [value(r, 3, "BIT_RATE") for r in rows]
    assert [x for x in rate[2] if x == x] == [x for x in bit_rate if x is not None]
    assert any(x for x in bit_rate)
    assert drawn_fraction(tmp_path / "again.png") == (frac, size)


def test_mapi_plot_command_and_missing_interval(tmp_path):
    png = tmp_path / "p.png"
    code, out, err = run_cli("plot", "-o", png, "-r", MIXED, "tcp")
    assert code == 0, err
    assert drawn_fraction(png)[1] == (1100, 750)
    assert "FLOW  FUNCTION" in out and "16 intervals plotted" in err
    code, _, err = run_cli("run", "-r", MIXED, "--plot", png, "PKT_COUNTER")
    assert code == 2 and "--plot needs --interval" in err
