"""pytest's side of the shared test code (the helpers themselves are in helpers/): tests that
need the sample corpus are skipped, with one reason, when it is not there, and the run ends by
saying how many were."""
import pytest

from helpers import CORPUS, CORPUS_REASON, have_corpus, needs_corpus


def pytest_report_header(config):
    return "sample corpus: %s (%s)" % (CORPUS, "found" if have_corpus() else
                                       "absent: tests that need it are skipped; set SCAMPI_CORPUS")


def pytest_generate_tests(metafunc):
    """parametrize_from_corpus: read the parameters from the corpus at collection, or stand in
    one skipped case when there is no corpus."""
    for mark in metafunc.definition.iter_markers("corpus_values"):
        argnames, values = mark.args
        names = [n.strip() for n in argnames.split(",")] if isinstance(argnames, str) else argnames
        if have_corpus():
            metafunc.parametrize(argnames, values(), ids=mark.kwargs.get("ids"))
        else:
            metafunc.parametrize(argnames, [pytest.param(*[None] * len(names), marks=needs_corpus)],
                                 ids=["no-corpus"])


def pytest_runtest_setup(item):
    # skipped here rather than by an added mark: -ra then shows one line for all of them
    if (item.get_closest_marker("corpus") or item.get_closest_marker("corpus_values")) \
            and not have_corpus():
        pytest.skip(CORPUS_REASON)


def pytest_terminal_summary(terminalreporter):
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if isinstance(r.longrepr, tuple) and CORPUS_REASON in str(r.longrepr[2])]
    if skipped:
        terminalreporter.write_sep("=", "%d tests skipped: no sample corpus at %s (SCAMPI_CORPUS)"
                                   % (len(skipped), CORPUS), yellow=True)
