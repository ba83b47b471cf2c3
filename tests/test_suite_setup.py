"""The suite itself: it runs from a plain clone (tests that need the sample corpus are skipped
with one reason and counted, and nothing reads the corpus when modules are imported), the
captures tests/data carries are the corpus's files with their licences, and test modules share
code only through helpers/."""
import ast
import hashlib
import os
import re
import subprocess
import sys

from helpers import CORPUS, DATA, ROOT, manifest, needs_corpus

TESTS = ROOT / "tests"


def pytest_run(*args, corpus):
    env = dict(os.environ, SCAMPI_CORPUS=str(corpus))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=600)


def test_without_a_corpus_every_module_is_collected(tmp_path):
    run = pytest_run("-q", "--collect-only", str(TESTS), corpus=tmp_path / "no-corpus")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r"^\d+ tests collected", run.stdout, re.M), run.stdout[-2000:]


def test_without_a_corpus_its_tests_skip_with_one_reason_and_are_counted(tmp_path):
    absent = tmp_path / "no-corpus"
    run = pytest_run("-q", "-ra", str(TESTS / "test_corpus_filters.py"),
                     str(TESTS / "test_shim_tcpdump.py"), str(TESTS / "test_fn_meter.py"),
                     corpus=absent)
    assert run.returncode == 0, run.stdout[-3000:]
    reason = "needs the SCAMPI sample corpus at %s (set SCAMPI_CORPUS to use another place)" % absent
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("SKIPPED")]
    assert len(lines) == 1 and lines[0].endswith(reason), run.stdout[-3000:]
    skipped = int(re.match(r"SKIPPED \[(\d+)\]", lines[0]).group(1))
    assert "%d tests skipped: no sample corpus at %s" % (skipped, absent) in run.stdout
    assert re.search(r"(\d+) passed, %d skipped" % skipped, run.stdout), run.stdout[-1000:]


def carried_files():
    return sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*")
                  if p.is_file() and p.parent.name != "LICENSES" and p.name != "README.md")


def test_carried_captures_are_listed_with_a_licence():
    table = {}
    for line in (DATA / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and "/" in cells[0]:
            table[cells[0]] = cells
    assert carried_files() and sorted(table) == carried_files()
    for name, (_, size, source, licence) in table.items():
        assert int(size) == (DATA / name).stat().st_size, name
        lic = re.search(r"\(LICENSES/([^)]+)\)", licence)
        assert lic and (DATA / "LICENSES" / lic.group(1)).is_file(), name
        assert re.match(r"[\w.-]+/[\w.+-]+@[0-9a-f]{12}:", source), name


@needs_corpus
def test_carried_captures_are_the_corpus_files():
    rows = manifest()
    for name in carried_files():
        row = rows[str(CORPUS / name)]
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == row["sha256"], name
        assert not row["license"].startswith(("LGPL", "AGPL", "GPL")), name


def test_test_modules_share_code_only_through_helpers():
    for path in sorted(TESTS.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert not top.startswith("test_") and top != "conftest", \
                    "%s:%d imports %s" % (path.name, node.lineno, name)


def test_one_replay_helper():
    defined = [str(p.relative_to(TESTS)) for p in sorted(TESTS.rglob("*.py"))
               if re.search(r"^def replay\(", p.read_text(), re.M)]
    assert defined == ["helpers/__init__.py"]
