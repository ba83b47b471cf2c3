"""Every extension point of SCAMPI, declared once.

A plugin is a module (or object) with ``@mapi.hookimpl`` functions named like the specs below;
it implements the hooks it needs.  Plugins are found through the ``scampi`` entry-point group
(scanned once and cached, see mapi.registry); the built-in backends and the standard function
library are registered exactly that way (see setup.cfg), so a pip-installed third-party plugin
has the same powers as the built-in ones.

Hooks marked ``firstresult`` stop at the first implementation that returns something other
than None.  Implementations run newest-registered first; ``@hookimpl(tryfirst=True)`` and
``@hookimpl(trylast=True)`` move one to the front or the back.  docs/plugins.md walks through
writing one.

The markers are pluggy's: ``hookspec`` and ``hookimpl`` set exactly the attribute that
``pluggy.HookspecMarker("scampi")`` and ``pluggy.HookimplMarker("scampi")`` set (a dict of
options under ``scampi_spec`` / ``scampi_impl``), so pluggy reads them and a plugin marked with
pluggy's own marker works as well.  They are defined here only so that importing a plugin does
not import pluggy: the registry needs pluggy when it scans the installed plugins, not when it
loads the one a run uses (see mapi.registry).
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:                      # for the annotations only: importing them costs start-up
    from typing import List, Optional

    from .descriptor import BackendDescriptor, FunctionDescriptor

PROJECT = "scampi"


class HookspecMarker:
    """pluggy.HookspecMarker without importing pluggy: marks a function as a hook spec."""

    def __init__(self, project_name):
        self.project_name = project_name

    def __call__(self, function=None, firstresult=False, historic=False, warn_on_impl=None,
                 warn_on_impl_args=None):
        if historic and firstresult:
            raise ValueError("cannot have a historic firstresult hook")

        def mark(func):
            setattr(func, self.project_name + "_spec",
                    dict(firstresult=firstresult, historic=historic, warn_on_impl=warn_on_impl,
                         warn_on_impl_args=warn_on_impl_args))
            return func
        return mark if function is None else mark(function)


class HookimplMarker:
    """pluggy.HookimplMarker without importing pluggy: marks a hook implementation."""

    def __init__(self, project_name):
        self.project_name = project_name

    def __call__(self, function=None, hookwrapper=False, optionalhook=False, tryfirst=False,
                 trylast=False, specname=None, wrapper=False):
        def mark(func):
            setattr(func, self.project_name + "_impl",
                    dict(wrapper=wrapper, hookwrapper=hookwrapper, optionalhook=optionalhook,
                         tryfirst=tryfirst, trylast=trylast, specname=specname))
            return func
        return mark if function is None else mark(function)


hookspec = HookspecMarker(PROJECT)
hookimpl = HookimplMarker(PROJECT)


@hookspec
def scampi_functions() -> List[FunctionDescriptor]:
    """Declare the MAPI functions this plugin provides.

    Called when the registry scans the installed plugins (the first start after anything
    installed changed, and by ``mapi functions``, which lists everything) and, in the other
    starts, when a name this plugin declared is first needed; at most once per process and
    registry, never per flow.  So the names a plugin declares must not depend on the process
    (the registry caches which plugin declares which name): a function that cannot work in
    some process is declared anyway and refused there with a clear error (its ``check``
    raises).

    A descriptor that is its module's ``DESCRIPTOR`` (a list of them too) and whose ``create``
    is defined in that module -- one small module per function, as the standard library does
    -- is found again by importing that module alone: a run imports the modules of the
    functions it uses and not the others.

    :returns: a list of :class:`mapi.descriptor.FunctionDescriptor`.  A descriptor declares a
        function's name (upper case), its arguments, whether it filters or modifies packets,
        its result type, its cost class and whether identical instances may be shared between
        flows; its ``create`` makes the instances (which carry the C kernel and state).  The
        organizer and mapper reason about a function from its descriptor alone.

    A name two plugins declare is kept for the first and reported (``mapi functions`` lists the
    problem) for the second; a malformed descriptor is reported and skipped.
    """


@hookspec
def scampi_backends() -> List[BackendDescriptor]:
    """Declare the packet-source backends this plugin provides.

    Called like :func:`scampi_functions`: at a scan, or when one of its names is first needed.

    :returns: a list of :class:`mapi.descriptor.BackendDescriptor`: one ops table each
        (open_offline, open_live, list_devices).  The engine only calls through the table and
        never asks which backend it is talking to.

    A backend that should be chosen for files or bare device names without being named also
    implements :func:`scampi_probe_offline` or :func:`scampi_claim_live`.
    """


@hookspec(firstresult=True)
def scampi_probe_offline(path: str, head: bytes) -> Optional[str]:
    """Which backend replays the offline device at `path`?

    Called by ``mapi.create_offline_device(path)`` when no ``backend=`` was given, once per
    device.  The first implementation returning a name wins (``firstresult``); the savefile
    backend answers last (``trylast``) for every file, so an unknown format gets its precise
    error.

    :param path: the file (or directory, or pipe) name the caller gave.
    :param head: its first 64 bytes as a reader sees them (decompressed when the file is
        gzip/xz/bzip2); ``b""`` when it cannot be read (a directory, a missing file).
    :returns: the name of a backend (declared by any plugin) whose ``open_offline`` reads it,
        or None to let the next implementation decide.  Must not raise: return None for what
        you do not recognise.
    """


@hookspec(firstresult=True)
def scampi_claim_live(name: str) -> Optional[str]:
    """Which backend opens the bare live device name `name` (no ``backend:`` prefix)?

    Called by ``mapi.create_flow(name)`` / ``open_live_device(name)`` when `name` is neither an
    offline device of this process nor ``backend:device`` for an installed backend.  The first
    implementation returning a name wins (``firstresult``); the ring backend answers last
    (``trylast``) for any interface name, so a missing interface gets its precise error.

    :param name: the device name the caller gave, e.g. ``"eth0"``.
    :returns: the name of a backend whose ``open_live`` will be called with `name`, or None.
        Must not raise.
    """
