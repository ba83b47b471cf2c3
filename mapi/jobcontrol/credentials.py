"""A connection's credentials: the token it presented, or what the config grants its uid.

A uid's grant is turned into a token too, signed by a key the server makes at start (never
written anywhere), so one path authorises every client: the grant's rights are the authority
block, exactly as if the administrator had issued them.  "all" (root by default) is
unrestricted; "none" (every other uid by default) grants nothing but the calls on a client's own
objects, of which it has none."""
import biscuit_auth as bis

from .rights import Rights, rights_of
from . import tokens


class Credential:
    def __init__(self, rights, token=None, source="uid", uid=None):
        self.rights = rights
        self.token = token
        self.source = source            # "token" or "uid"
        self.uid = uid
        self.principal = rights.principal
        # level keys of the quotas: the principal, then each later block of the token
        self.levels = [(0, "principal:" + rights.principal)] + \
            [(i, "block:" + rid) for i, rid in enumerate(rights.ids) if i > 0]

    @property
    def label(self):
        if self.source == "token":
            return "%s (token %s%s)" % (self.principal, tokens.short_id(self.rights.ids[-1]),
                                        ", %d blocks" % len(self.rights.ids)
                                        if len(self.rights.ids) > 1 else "")
        return "uid %s (no token)" % self.uid

    @property
    def prefix_terms(self):
        return [expr for _, expr in self.rights.filters]

    def summary(self):
        out = self.rights.summary()
        out.update(source=self.source, label=self.label,
                   ids=[tokens.short_id(i) for i in self.rights.ids])
        return out


class Grants:
    """Credentials of clients without a token, from [jobcontrol.grants]."""

    def __init__(self, grants):
        self.grants = dict(grants)
        self._key = bis.KeyPair()
        self._cache = {}

    def credential(self, uid):
        key = str(uid)
        grant = self.grants.get(key, self.grants.get("*", "none"))
        principal = "uid:%d" % uid
        if grant == "all":
            return Credential(Rights(principal, unrestricted=True), source="uid", uid=uid)
        cached = self._cache.get(key)
        if cached is None:
            spec = {} if grant == "none" else grant
            token = tokens.issue(self._key.private_key, principal,
                                 devices=spec.get("devices", ()),
                                 functions=spec.get("functions", ()),
                                 classes=spec.get("classes", ()), load=spec.get("load", ()),
                                 filter=spec.get("filter"), limits=spec.get("limits"))
            token = bis.Biscuit.from_bytes(token.to_bytes(), self._key.public_key)
            cached = self._cache[key] = token
        return Credential(rights_of(cached), cached, source="uid", uid=uid)
