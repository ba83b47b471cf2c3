"""atheris target: the flow language of `mapi run` and MAPI's argument validators.

Any text given to the flow parser must parse or raise the parser's SpecError; every step that
names an installed function then goes through mapi.api.bind_args, which must accept the
arguments or raise MapiError.  Anything else (IndexError, TypeError, RecursionError, a hang)
is a bug.  Run by fuzz/run.py with libFuzzer's options."""
import sys

import atheris

with atheris.instrument_imports():
    import mapi
    from mapi.api import bind_args
    from mapi.registry import get_registry

# The flow-language parser: mapi/cli/flowspec.py (imported by name: walking the mapi.cli
# package would import its __main__, which runs the CLI on the fuzzer's argv).
with atheris.instrument_imports():
    from mapi.cli.flowspec import SpecError, parse_flow
REGISTRY = get_registry()


def _plain(v):
    """A parsed value as an application would pass it: a label becomes an (fd, fid) pair."""
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if type(v).__name__ == "Ref":
        return (1, 1)
    return v


def one_input(data):
    text = data.decode("utf-8", "surrogateescape")
    try:
        steps = parse_flow(text, 1)
    except SpecError:
        return
    for step in steps:
        try:
            desc = REGISTRY.function(step.name)
        except mapi.MapiError:
            continue
        try:
            bind_args(desc, tuple(_plain(a) for a in step.args),
                      {k: _plain(v) for k, v in step.kwargs.items()})
        except mapi.MapiError:
            pass


if __name__ == "__main__":
    sys.setrecursionlimit(2000)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
