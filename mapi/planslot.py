"""The plan a device's engine runs next: built by whoever changed the graph (connect, close),
published here, installed by the engine between two batches (or at once by the builder when
the engine is between batches), so a connect never waits for the batch under way."""
import contextlib
import os
import threading

from .lazylog import getLogger

log = getLogger("mapi.device")


class PlanSlot:
    """At most one plan waiting to be installed; among builders that race, the plan of the
    latest graph version wins (an older one published later is dropped)."""

    def __init__(self):
        self._lock = threading.Condition()
        self._waiting = None
        self._newest = -1
        self._failed = None             # (version, exception) of the last build that raised

    def publish(self, version, plan):
        plan.version = version
        with self._lock:
            if version >= self._newest:
                self._newest = version
                self._waiting = plan
            self._lock.notify_all()

    def failed(self, version, exc):
        """A build of `version` raised: whoever waits for it is told instead of waiting on."""
        with self._lock:
            self._failed = (version, exc)
            self._lock.notify_all()

    def wait_published(self, version, timeout):
        """Until a plan of graph version >= `version` was published (installed or waiting):
        True; the exception of a build of that version that failed is raised; False after
        `timeout` seconds."""
        with self._lock:
            ok = self._lock.wait_for(lambda: self._newest >= version or
                                     (self._failed is not None and self._failed[0] >= version),
                                     timeout)
            if self._newest >= version:
                return True
            if ok:
                raise self._failed[1]
            return False

    def waiting(self):
        return self._waiting is not None

    def take(self):
        """The plan to install now, or None."""
        with self._lock:
            plan, self._waiting = self._waiting, None
        return plan



class Planner:
    """One thread of the process builds running devices' next plans, so that a connect returns
    without compiling the whole graph (O(nodes) of Python).  A device asked for while its build
    is queued is built once (coalesced): a burst of connects costs one or two builds, not one
    each.  A build runs at the scheduling priority of the thread that asked (a server's control
    thread must not wait for a build preempted at a lower one while it holds the interpreter)."""

    def __init__(self):
        self._cv = threading.Condition()
        self._queue = {}                # device -> (build, nice), oldest request first
        self._building = None           # the device whose build runs now
        self._builder_tid = None
        self._pid = None
        self._local = threading.local()

    @contextlib.contextmanager
    def after(self):
        """Builds this thread asks for in the body (that nobody waits for) start when it ends:
        mapid runs a call and sends its answer first, so the build does not take the
        interpreter from the answer."""
        if getattr(self._local, "held", None) is not None:
            yield                           # nested: the outermost body decides
            return
        held = self._local.held = []
        try:
            yield
        finally:
            self._local.held = None
            for device, build, nice in held:
                self._enqueue(device, build, nice)

    def request(self, device, build, waited=False):
        """Build `device`'s next plan on the planner thread; waited: the caller waits for it
        (never held back by after())."""
        nice = _nice()
        held = getattr(self._local, "held", None)
        if held is not None and not waited:
            held.append((device, build, nice))
            return
        self._enqueue(device, build, nice)

    def _enqueue(self, device, build, nice):
        with self._cv:
            if self._pid != os.getpid():    # first use, or a forked child: no thread yet
                self._pid = os.getpid()
                self._queue.clear()
                self._building = None       # a parent's build does not run in this child
                threading.Thread(target=self._loop, name="mapi-idle", daemon=True).start()
            queued = self._queue.get(device)
            if queued is not None and queued[1] is not None and nice is not None:
                nice = min(nice, queued[1])
            self._queue[device] = (build, nice)
            self._cv.notify()

    def cancel(self, device):
        """A build of `device` starts now elsewhere (close): it covers what was requested."""
        with self._cv:
            self._queue.pop(device, None)

    def settle(self, device):
        """Nothing of `device` queued or running here once this returns (a device being
        deleted): a queued build is dropped (also one this thread holds back in after()), a
        running one waited for."""
        held = getattr(self._local, "held", None)
        if held:
            held[:] = [h for h in held if h[0] is not device]
        with self._cv:
            self._queue.pop(device, None)
            if threading.get_native_id() != self._builder_tid:
                self._cv.wait_for(lambda: self._building is not device)

    def _loop(self):
        me = threading.current_thread()
        tid = self._builder_tid = threading.get_native_id()
        while True:
            with self._cv:
                while not self._queue:
                    me.name = "mapi-idle"        # as mapi.workers names a worker between jobs
                    self._cv.wait()
                device = next(iter(self._queue))
                build, nice = self._queue.pop(device)
                self._building = device
                me.name = "mapi-plan-%s" % getattr(device, "name", "?")
            _set_nice(tid, nice)
            try:
                build()
            except Exception:
                log.exception("building the next plan of %s failed", me.name[10:])
            with self._cv:
                self._building = None
                me.name = "mapi-idle"        # before settle() returns to anyone
                self._cv.notify_all()
            device = build = None


PLANNER = Planner()


def _nice():
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except (OSError, AttributeError):
        return None


def _set_nice(tid, nice):
    if nice is None:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError:
        pass                    # a higher priority takes a privilege this process may not have
