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

    def subscriber(self, name=None, types=None, since_id=0, **retry):
        """A reader of the queue: durable when named (it resumes after a
        restart where it stopped), else transient. The retry keywords of
        Subscriber (max_attempts, retry_delay, retry_delay_max,
        strict_order) apply to Subscriber.process(); cursor_only is passed
        on too."""
        return Subscriber(self, name, types, since_id, **retry)

    def dead_letters(self, subscriber=None):
        """The dead letters (of one subscriber: a name on this host or a
        full id), oldest first, as dicts: id, subscriber, event_id,
        event_type, source, hostname, created_at, error, attempts,
        first_failed_at, dead_at."""
        out = ctypes.c_void_p()
        _lib.check(lib.rre_queue_dlq_list(self._handle(), enc(subscriber), ctypes.byref(out)))
        return _lib.take_json(out)

    def dead_letter(self, letter_id):
        """One dead letter with its event's `payload`; NotFoundError when
        there is none with that id."""
        out = ctypes.c_void_p()
        _lib.check(lib.rre_queue_dlq_get(self._handle(), int(letter_id), ctypes.byref(out)))
        return _lib.take_json(out)

    def replay_dead_letters(self, letter_id=None, subscriber=None):
        """Sends dead letters back to their own subscriber only, due at
        once: the one with `letter_id`, else all (of `subscriber`).
        Returns how many."""
        n = ctypes.c_uint64()
        _lib.check(lib.rre_queue_dlq_replay(self._handle(), int(letter_id or 0), enc(subscriber),
                                            ctypes.byref(n)))
        return n.value

    def drop_dead_letters(self, letter_id=None, older_than=None, subscriber=None):
        """Deletes the dead letter `letter_id`, or those that died more
        than `older_than` seconds ago (of `subscriber`). Returns how
        many."""
        if (letter_id is None) == (older_than is None):
            raise ValueError("give letter_id or older_than")
        n = ctypes.c_uint64()
        _lib.check(lib.rre_queue_dlq_drop(self._handle(), int(letter_id or 0),
                                          float(older_than or 0), enc(subscriber),
                                          ctypes.byref(n)))
        return n.value

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
    until the subscriber is closed. With cursor_only=True a durable
    subscriber records its progress in its cursor only, without the Python
    router's acks rows (about twice as fast; for an id that no Python
    router's consumer will ever take over: one that does sees every
    retained event as new)."""

    def __init__(self, queue, name=None, types=None, since_id=0, max_attempts=None,
                 retry_delay=None, retry_delay_max=None, strict_order=False, cursor_only=False):
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
        if max_attempts is not None:
            o.max_attempts = int(max_attempts) if max_attempts > 0 else -1
        if retry_delay is not None:
            o.retry_delay_s = float(retry_delay)
        if retry_delay_max is not None:
            o.retry_delay_max_s = float(retry_delay_max)
        o.strict_order = bool(strict_order)
        o.cursor_only = bool(cursor_only)
        # Payloads come as their stored JSON text, read by json.loads: no
        # parse into the C library's objects and no writing them out again.
        o.lazy_payload = True
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

    def process(self, handler, timeout=1.0, max_events=100):
        """Hands the next events (up to max_events, waiting up to `timeout`
        seconds for the first) to handler(event), one by one; returns how
        many it was given. For a durable subscriber, an event whose handler
        raises is delivered again after the retry delay, and after
        max_attempts failures goes to the dead letters with the exception
        as its error; raise rre.errors.RetryLater to be asked again without
        a failure counted, rre.errors.Rejected to send it to the dead
        letters at once. KeyboardInterrupt and SystemExit stop the call
        (that event is delivered again) and propagate."""
        from .event_router import _event_from_c

        stop = []

        def on_event(evp, _ud):
            try:
                handler(_event_from_c(evp.contents))
                return 0
            except (KeyboardInterrupt, SystemExit) as e:
                stop.append(e)
                return 14  # RRE_ECLOSED: not acknowledged, delivered again
            except BaseException as e:  # noqa: B902 - a handler's failure, reported
                code = _status_of(e)
                detail = e.detail if isinstance(e, _lib.errors.Error) else str(e)
                text = "%s: %s" % (type(e).__name__, detail) if detail else type(e).__name__
                return lib.rre_fail(code, enc(text))

        fn = _lib.QUEUE_HANDLER_FN(on_event)
        n = ctypes.c_size_t()
        with self._lock:
            st = lib.rre_subscriber_poll(self._handle(), int(timeout * 1000), int(max_events),
                                         fn, None, ctypes.byref(n))
        if stop:
            raise stop[0]
        if st != 16:
            _lib.check(st)
        return n.value

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


_CODES = {}


def _status_of(exc):
    """The library status a handler's exception stands for: its own for
    an rre.Error (RetryLater and Rejected included), else RRE_EINTERNAL."""
    name = getattr(exc, "status", None) if isinstance(exc, _lib.errors.Error) else None
    if name is None:
        return 20
    if not _CODES:
        for code in range(64):
            _CODES[dec(lib.rre_status_name(code))] = code
    code = _CODES.get(name, 20)
    return code if code not in (0, 14) else 20
