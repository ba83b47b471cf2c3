"""The plan a device's engine runs next: built by whoever changed the graph (connect, close),
published here, installed by the engine between two batches (or at once by the builder when
the engine is between batches), so a connect never waits for the batch under way."""
import threading


class PlanSlot:
    """At most one plan waiting to be installed; among builders that race, the plan of the
    latest graph version wins (an older one published later is dropped)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._waiting = None
        self._newest = -1

    def publish(self, version, plan):
        with self._lock:
            if version >= self._newest:
                self._newest = version
                self._waiting = plan

    def waiting(self):
        return self._waiting is not None

    def take(self):
        """The plan to install now, or None."""
        with self._lock:
            plan, self._waiting = self._waiting, None
        return plan
