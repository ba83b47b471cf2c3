"""Which backend opens a device: the registry's answers to "who replays this file" and "who
opens this live device", from the firstresult hooks scampi_probe_offline and scampi_claim_live
(mapi.hookspecs).  Once a scan has loaded every plugin pluggy calls the hooks; before that
they are called as pluggy would, in the order the scan recorded in the index, importing only
the plugins that implement them."""
from .errors import MapiError, EPLUGIN, ENODEV

PROBE_BYTES = 64


class BackendChoice:
    """Mixed into mapi.registry.Registry, whose ``backends``, ``_pm``, ``_asked``, ``_plugin``
    and ``_load_all`` it uses."""

    def offline_backend(self, path, head=None):
        """The backend that replays `path`: the first answer of scampi_probe_offline.  `head`:
        the file's first PROBE_BYTES when the caller read them itself (mapid reads its
        client's descriptor and never opens the name); otherwise they are read from `path`."""
        import os
        from .compression import read_head
        if head is None:
            head = b"" if os.path.isdir(path) else read_head(path, PROBE_BYTES)
        name = self._ask("scampi_probe_offline", "which backend reads %s" % path,
                         path=path, head=head)
        if name is None:
            raise MapiError(ENODEV, "no installed backend reads %s" % path, file=path)
        desc = self._chosen(name, "file %s" % path)
        if desc.open_offline is None:
            raise MapiError(ENODEV, "backend %s (chosen for %s) cannot replay files" % (name, path),
                            file=path)
        return desc

    def live_backend(self, name):
        """(backend, device name it opens) for a live device: "backend:device" names the
        backend; a bare name goes to the first answer of scampi_claim_live."""
        if ":" in name:
            bname, device = name.split(":", 1)
            d = self.backends.get(bname)
            if d is not None:
                if d.open_live is None:
                    raise MapiError(ENODEV, "backend %s has no live devices" % bname, argument="dev")
                return d, device
        claimed = self._ask("scampi_claim_live", "which backend opens %r" % name, name=name)
        if claimed is None:
            raise MapiError(ENODEV, "no device %r: it is not an offline device of this process and "
                            "no installed backend opens it as a live device" % name, argument="dev")
        d = self._chosen(claimed, "device %r" % name)
        if d.open_live is None:
            raise MapiError(ENODEV, "backend %s (which claimed %r) has no live devices"
                            % (claimed, name), argument="dev")
        return d, name

    def _ask(self, hook, what, **kwargs):
        try:
            if self._pm is not None:
                return getattr(self._pm.hook, hook)(**kwargs)
            try:
                return self._ask_indexed(hook, kwargs)
            except _NotAsIndexed:
                self._load_all()
                return getattr(self._pm.hook, hook)(**kwargs)
        except Exception as exc:       # a hook must not raise; say which question failed
            raise MapiError(EPLUGIN, "a plugin's %s failed asking %s: %s: %s"
                            % (hook, what, type(exc).__name__, exc)) from exc

    def _ask_indexed(self, hook, kwargs):
        """A firstresult hook called as pluggy calls it, in the order the scan recorded."""
        for pname, argnames in reversed(self._asked[hook]):
            try:
                fn = getattr(self._plugin(pname), hook)
            except Exception as exc:
                raise _NotAsIndexed() from exc
            answer = fn(*[kwargs[a] for a in argnames])
            if answer is not None:
                return answer
        return None

    def _chosen(self, name, what):
        d = self.backends.get(name)
        if d is None:
            raise MapiError(EPLUGIN, "a plugin chose backend %r for %s, but no plugin declares it "
                            "(installed backends: %s)" % (name, what, ", ".join(sorted(self.backends))))
        return d


class _NotAsIndexed(Exception):
    """A plugin the index names does not load: the registry scans instead."""
