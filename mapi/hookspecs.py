"""Every extension point of SCAMPI, declared once.

A plugin is a module (or object) with ``@mapi.hookimpl`` functions named like the specs below.
Plugins are found through the ``scampi`` entry-point group; the built-in backends and the
standard function library are registered exactly that way (see setup.cfg), so a pip-installed
third-party plugin has the same powers as the built-in ones.
"""
import pluggy

hookspec = pluggy.HookspecMarker("scampi")
hookimpl = pluggy.HookimplMarker("scampi")


@hookspec
def scampi_functions():
    """Return a list of :class:`mapi.descriptor.FunctionDescriptor` this plugin provides.

    A descriptor declares a MAPI function's name, its arguments, whether it filters or modifies
    packets, its result type, its cost class and whether identical instances may be shared
    between flows; and it creates instances (which carry the C kernel and state).  The organizer
    and mapper reason about a function from its descriptor alone.  Two plugins must not declare
    the same name (the second is rejected with an error naming both plugins).
    """


@hookspec
def scampi_backends():
    """Return a list of :class:`mapi.descriptor.BackendDescriptor` this plugin provides.

    A backend is one ops table (probe, open_offline, open_live, list_devices): the engine only
    calls through it and never asks which backend it is talking to.
    """
