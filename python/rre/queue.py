"""The host's durable queue (the SQLite file shared with the Python
processes of the original) and its durable subscribers."""

import ctypes
import threading
import weakref

from . import _lib, catalog
from ._lib import dec, enc, lib


class Queue:
    """Queue(path=None, hostname=None, read_only=False): opens (creating
    when missing) the queue database; path None is the default location.
    Use it in a `with` block or call close()."""

    def __init__(self, path=None, hostname=None, read_only=False, dedup_window=None,
                 default_source=None):
        self._q = None
        o = _lib.QueueOptions()
        lib.rre_queue_options_init(ctypes.byref(o))
        self._keep = (enc(path), enc(hostname), enc(default_source))
        o.path, o.hostname, o.default_source = self._keep
        o.read_only = bool(read_only)
        if dedup_window is not None:
            o.dedup_window_seconds = float(dedup_window) if dedup_window > 0 else -1.0
        q = ctypes.c_void_p()
        _lib.check(lib.rre_queue_create(ctypes.byref(q), ctypes.byref(o)))
        self._q = q
        self._lock = threading.Lock()
        # Subscribers and links that use this queue: closed before it is.
        self._dependents = weakref.WeakSet()

    def _handle(self):
        if self._q is None:
            raise _lib.errors.ClosedError("RRE_ECLOSED", "the queue is closed")
        return self._q

    @property
    def path(self):
        return dec(lib.rre_queue_path(self._handle()))

    @property
    def hostname(self):
        return dec(lib.rre_queue_hostname(self._handle()))

    def publish(self, event_type, payload, source=None, timestamp=None, trace_id=None):
        """Appends one event; returns (event_id, duplicate)."""
        code = catalog.code_of(event_type)
        pj = _lib.to_json_t(payload)
        res = _lib.QueuePublishResult()
        try:
            _lib.check(lib.rre_queue_publish(self._handle(), code, pj, enc(source),
                                             enc(timestamp), enc(trace_id), ctypes.byref(res)))
        finally:
            lib.rre_payload_release(pj)
        return res.event_id, bool(res.duplicate)

    def publish_batch(self, events, source=None):
        """Appends several events in one transaction (all or none): `events`
        is an iterable of (event_type, payload) pairs. Returns a list of
        (event_id, duplicate), in order. Many times faster than one publish
        per event when events are at hand."""
        items = list(events)
        n = len(items)
        if n == 0:
            return []
        arr = (_lib.Event * n)()
        dups = (ctypes.c_bool * n)()
        src = enc(source)
        owned = []
        try:
            for i, item in enumerate(items):
                try:
                    event_type, payload = item
                except (TypeError, ValueError):
                    raise TypeError("publish_batch takes (event_type, payload) pairs; item %d "
                                    "is %r" % (i, item)) from None
                arr[i].type = catalog.code_of(event_type)
                pj = _lib.to_json_t(payload)
                owned.append(pj)
                arr[i].payload = pj
                arr[i].source = src
            _lib.check(lib.rre_queue_publish_batch(self._handle(), arr, n, dups))
            return [(arr[i].event_id, bool(dups[i])) for i in range(n)]
        finally:
            for pj in owned:
                lib.rre_payload_release(pj)

    def subscriber(self, name=None, types=None, since_id=0):
        """A reader of the queue: durable when named (it resumes after a
        restart where it stopped), else transient."""
        return Subscriber(self, name, types, since_id)

    def stats(self):
        out = ctypes.c_void_p()
        _lib.check(lib.rre_queue_stats(self._handle(), ctypes.byref(out)))
        return _lib.take_json(out)

    def close(self):
        """Closes the queue, and first what uses it: its subscribers (a
        poll in progress returns) and the links of routers to it (the
        routers go on in-process). Idempotent."""
        if self._q is None:
            return
        for d in list(self._dependents):
            d._queue_closing()
        q, self._q = self._q, None
        lib.rre_queue_close(q)
        lib.rre_queue_destroy(q)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Subscriber:
    """Reads events in order. poll() returns a list of RouterEvents (each
    acknowledged once returned, for a durable subscriber); iteration polls
    until the subscriber is closed."""

    def __init__(self, queue, name=None, types=None, since_id=0):
        self._queue = queue
        self._s = None
        o = _lib.SubscriberOptions()
        lib.rre_subscriber_options_init(ctypes.byref(o))
        self._name = enc(name)
        o.name = self._name
        if types:
            codes = [catalog.code_of(t) for t in types]
            self._types = (ctypes.c_int * len(codes))(*codes)
            o.types = ctypes.cast(self._types, ctypes.POINTER(ctypes.c_int))
            o.type_count = len(codes)
        o.since_id = int(since_id)
        self._lock = threading.Lock()  # held by poll; close waits for it
        s = ctypes.c_void_p()
        _lib.check(lib.rre_subscriber_create(ctypes.byref(s), queue._handle(), ctypes.byref(o)))
        self._s = s
        queue._dependents.add(self)

    @property
    def id(self):
        return dec(lib.rre_subscriber_id(self._handle()))

    def _handle(self):
        if self._s is None:
            raise _lib.errors.ClosedError("RRE_ECLOSED", "the subscriber is closed")
        return self._s

    def poll(self, timeout=1.0, max_events=100):
        """The next events (up to max_events), waiting up to `timeout`
        seconds for the first. [] when none came."""
        from .event_router import _event_from_c

        got = []

        def on_event(evp, _ud):
            try:
                got.append(_event_from_c(evp.contents))
                return 0
            except Exception:
                return 2  # RRE_ENOMEM-like failure: the row is read again

        fn = _lib.QUEUE_HANDLER_FN(on_event)
        n = ctypes.c_size_t()
        with self._lock:
            st = lib.rre_subscriber_poll(self._handle(), int(timeout * 1000), int(max_events),
                                         fn, None, ctypes.byref(n))
        if st == 16:  # timed out: nothing new
            return got
        _lib.check(st)
        return got

    def __iter__(self):
        while self._s is not None:
            try:
                events = self.poll(1.0)
            except _lib.errors.ClosedError:
                return
            yield from events

    def close(self):
        """Stops the subscriber: a poll in progress on another thread
        returns (ClosedError), then it is freed. Idempotent."""
        s = self._s
        if s is None:
            return
        lib.rre_subscriber_close(s)  # wakes a poll in progress
        with self._lock:
            if self._s is None:
                return
            self._s = None
            lib.rre_subscriber_destroy(s)

    def _queue_closing(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
