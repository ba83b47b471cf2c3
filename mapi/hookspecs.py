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
"""
from typing import TYPE_CHECKING, List, Optional

import pluggy

if TYPE_CHECKING:                      # for the annotations only: importing them costs start-up
    from .descriptor import BackendDescriptor, FunctionDescriptor

hookspec = pluggy.HookspecMarker("scampi")
hookimpl = pluggy.HookimplMarker("scampi")


@hookspec
def scampi_functions() -> "List[FunctionDescriptor]":
    """Declare the MAPI functions this plugin provides.

    Called once per registry refresh (the first use of the registry in a process, and after
    ``Registry.register``), never per flow.

    :returns: a list of :class:`mapi.descriptor.FunctionDescriptor`.  A descriptor declares a
        function's name (upper case), its arguments, whether it filters or modifies packets,
        its result type, its cost class and whether identical instances may be shared between
        flows; its ``create`` makes the instances (which carry the C kernel and state).  The
        organizer and mapper reason about a function from its descriptor alone.

    A name two plugins declare is kept for the first and reported (``mapi functions`` lists the
    problem) for the second; a malformed descriptor is reported and skipped.
    """


@hookspec
def scampi_backends() -> "List[BackendDescriptor]":
    """Declare the packet-source backends this plugin provides.

    Called once per registry refresh, like :func:`scampi_functions`.

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
