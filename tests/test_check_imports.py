"""tools/check_imports.py: the house rules hold in this tree, and the checker fails on a small
synthetic tree for each kind of violation (so it cannot pass by finding nothing)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKER = ROOT / "tools" / "check_imports.py"


def run(root, *extra):
    p = subprocess.run([sys.executable, str(CHECKER), "--root", str(root), *extra],
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def tree(tmp_path, files):
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


CLEAN = {
    "mapi/__init__.py": "from .errors import MapiError\n",
    "mapi/errors.py": "class MapiError(Exception):\n    pass\n",
    "mapi/api.py": "from .errors import MapiError\nfrom ._engine import lib\n",
    "plugins/stdfuncs/__init__.py": "from mapi import MapiError\n",
    "plugins/stdfuncs/count.py": "from mapi.errors import MapiError\nfrom . import helper\n",
    "plugins/stdfuncs/helper.py": "import os\n",
    "backends/__init__.py": "",
    "backends/savefile.py": "from mapi.errors import MapiError\n",
    "tools/gen.py": "import mapi\nfrom scampi.backends import savefile\n",
    "mapi/csrc/engine.h": "#include <stdint.h>\n",
    "mapi/csrc/plan.c": '#include "engine.h"\n',
    "mapi/csrc/fn/count.c": '#include "../engine.h"\n#include "count.h"\n',
    "mapi/csrc/fn/count.h": '#include "../engine.h"\n',
    "backends/netflow/collector.c": '#include "engine.h"\n#include "collector.h"\n',
    "backends/netflow/collector.h": '#include "engine.h"\n',
}


def failing(tmp_path, append=(), replace=()):
    """Output of the checker on CLEAN with lines appended to some files and others replaced;
    asserts that it failed."""
    files = dict(CLEAN)
    files.update(replace)
    for path, text in dict(append).items():
        files[path] += text
    rc, out = run(tree(tmp_path, files))
    assert rc == 1, out
    return out


def test_this_tree_keeps_the_rules():
    rc, out = run(ROOT)
    assert rc == 0, out


def test_a_clean_synthetic_tree_passes(tmp_path):
    rc, out = run(tree(tmp_path, CLEAN))
    assert rc == 0, out
    assert "check_imports:" not in out


def test_the_core_importing_a_backend_fails_even_inside_a_function(tmp_path):
    out = failing(tmp_path, append={
        "mapi/api.py": "def probe():\n    from scampi.backends.savefile import x\n"})
    assert "mapi/api.py:4: mapi.api imports scampi.backends.savefile" in out
    # savefile imports only mapi.errors here: no circle
    assert "circle" not in out


def test_a_backend_importing_a_function_and_installed_code_importing_tools_fail(tmp_path):
    out = failing(tmp_path, append={
        "backends/savefile.py": "from scampi.plugins.stdfuncs import count\n",
        "plugins/stdfuncs/helper.py": "import tools.gen\n"})
    assert "scampi.backends.savefile imports scampi.plugins.stdfuncs.count" in out
    assert "scampi.plugins.stdfuncs.helper imports tools.gen" in out


def test_a_python_import_circle_through_a_package_fails(tmp_path):
    out = failing(tmp_path, replace={
        "mapi/errors.py": "from . import api\n",              # api -> errors -> api
        "backends/savefile.py": "from mapi import MapiError\n"})
    assert "circle (python): mapi.api -> mapi.errors -> mapi.api" in out


def test_c_include_circle_and_engine_including_a_backend_fail(tmp_path):
    out = failing(tmp_path, append={
        "mapi/csrc/fn/count.c": '#include "../../../backends/netflow/collector.h"\n',
        "backends/netflow/collector.c": '#include "fn/count.h"\n'})
    assert ("mapi/csrc/fn/count.c:3: mapi/csrc/fn/count includes backends/netflow/collector"
            in out)
    assert ("circle (C): backends/netflow/collector -> mapi/csrc/fn/count -> "
            "backends/netflow/collector" in out)


def test_exceptions_let_a_known_edge_pass_and_stale_ones_are_noted(tmp_path):
    files = dict(CLEAN)
    files["mapi/api.py"] += "from scampi.backends.savefile import x\n"
    root = tree(tmp_path, files)
    exc = tmp_path / "exceptions.txt"
    exc.write_text("mapi.api -> scampi.backends.savefile  # moving\nmapi.x -> mapi.y  # gone\n")
    rc, out = run(root, "--exceptions", str(exc))
    assert rc == 0, out
    assert "exception no longer needed (line 2" in out and "mapi.x -> mapi.y" in out


def test_the_rooms_inside_mapi_keep_their_order(tmp_path):
    """The core never reaches up to mapid, the clients or job control; a client never imports
    the server; the package's facade alone may hand calls to the client."""
    out = failing(tmp_path, replace={
        "mapi/server/__init__.py": "from mapi.jobcontrol import policy\n",
        "mapi/jobcontrol/__init__.py": "",
        "mapi/jobcontrol/policy.py": "from mapi.errors import MapiError\n",
        "mapi/client/__init__.py": "from mapi.server import session\n",
        "mapi/server/session.py": "from mapi.errors import MapiError\n",
    }, append={
        "mapi/__init__.py": "from .client import use_server\n",
        "mapi/api.py": "def remote():\n    from mapi.client import x\n",
        "mapi/errors.py": "def admit():\n    from mapi.jobcontrol import policy\n"})
    assert "mapi.client imports mapi.server.session (mapi.client must not import mapi.server)" in out
    assert "mapi.api imports mapi.client (mapi must not import mapi.client)" in out
    assert "mapi.errors imports mapi.jobcontrol.policy (mapi must not import mapi.jobcontrol)" in out
    assert "mapi/__init__.py" not in out            # the facade: by design
    assert "mapi.server imports" not in out         # the server may use job control
