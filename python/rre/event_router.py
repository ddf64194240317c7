"""The unified event router, with the API the catalog's Python examples use.

    from rre.event_router import publish, subscribe, get_router
    from rre.data_events import DataEventType

    async def on_training(event):
        print(event.payload["config_key"])

    subscribe(DataEventType.TRAINING_COMPLETED, on_training)
    await publish(DataEventType.TRAINING_COMPLETED, {...}, source="trainer")

The router is librre's: validation, the content hash, the dedup window and
the history are the C library's. `get_router()` links it to the host's
durable queue (the default location, or RRE_DB / the path given to
`get_router(db_path=...)`), so a subscriber also receives what other
processes of the host and, through the bridge, other hosts publish.

Handlers may be plain functions or `async def` functions:
- a plain function runs on the thread that delivers the event (the
  publishing thread for local events, the queue reader's thread for events
  from other processes); an exception is logged and reported as
  HANDLER_FAILED, and the other handlers run regardless;
- a coroutine function runs on the event loop that was running when it
  subscribed (or, failing that, the loop running when the event is
  published). `await publish(...)` awaits the coroutines its own delivery
  started; events from other threads are handed over to the loop
  thread-safely. A coroutine that raises is reported as HANDLER_FAILED.
"""

import ctypes
import enum
import inspect
import json
import logging
import os
import sys
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from . import _lib, catalog
from ._lib import dec, enc, lib
from .data_events import DataEventType
from .errors import InvalidPayloadError
from .stage_events import StageEvent

log = logging.getLogger("rre")

ORIGINS = {0: "local", 1: "process", 2: "host"}


class EventSource(str, enum.Enum):
    """Where a routed event came from (RouterEvent.origin holds the value)."""

    LOCAL = "local"  # published in this process
    PROCESS = "process"  # another process of this host, through the durable queue
    HOST = "host"  # another host, through the NATS bridge
_VALIDATION = {"off": 0, "warn": 1, "strict": 2}


@dataclass
class RouterEvent:
    """An event as handlers see it. `event_type` is the canonical NAME."""

    event_type: str
    payload: Dict[str, Any]
    source: str = ""
    timestamp: str = ""
    trace_id: str = ""
    content_hash: str = ""
    event_id: int = 0
    origin: str = "local"
    hostname: str = ""
    duplicate: bool = False
    delivered: int = 0
    problems: list = field(default_factory=list)

    @property
    def data_event_type(self):
        return DataEventType[self.event_type]


_NAMES = tuple(t.name for t in catalog.TYPES)
_SPELLINGS = {}


def _payload_of(ev):
    if ev.payload_text:
        return json.loads(ctypes.string_at(ev.payload_text, ev.payload_len).decode("utf-8"))
    return _lib.from_json_t(ev.payload) or {}


def _event_from_c(ev, payload=None):
    return RouterEvent(
        event_type=_NAMES[ev.type],
        payload=payload if payload is not None else _payload_of(ev),
        source=dec(ev.source) or "",
        timestamp=dec(ev.timestamp),
        trace_id=dec(ev.trace_id),
        content_hash=_lib.hexhash(ev.hash),
        event_id=ev.event_id,
        origin=ORIGINS.get(ev.origin, "local"),
        hostname=dec(ev.hostname) or "",
    )


def _problems(res):
    out = []
    buf = ctypes.create_string_buffer(256)
    for k in range(res.problems.count):
        lib.rre_problem_format(ctypes.byref(res.problems.items[k]), buf, len(buf))
        out.append(dec(buf.value))
    return out


class _Subscription:
    __slots__ = ("router", "handler", "loop", "is_coro", "name", "cfn", "sid", "__weakref__")


_local = threading.local()


class Router:
    """librre's router; optionally linked to a durable queue.

    Router(db_path=None, link=True, validation="warn", dedup=True,
           dedup_window=3600.0, history_size=1000, source=None,
           subscriber_name=None, hostname=None, retry_handlers=False,
           max_attempts=None, retry_delay=None, retry_delay_max=None,
           pipelined=False)

    With link=True the router appends every local event to the queue and
    delivers what other processes append (a durable subscriber when
    `subscriber_name` is given: it resumes where it stopped). With
    retry_handlers=True (and a subscriber_name) a handler that raises on an
    event in the queue is called with it again after the retry delay, and
    after max_attempts failures the event goes to the dead letters under
    "<host>:stable:<subscriber_name>/<handler name>" (see docs/PYTHON.md).
    With pipelined=True a publish returns before its event is committed to
    the queue (a writer thread commits events in groups, several times
    faster): call flush() before telling anyone an event is stored; close()
    flushes. It cannot be combined with retry_handlers.
    Use it in a `with` block or call close()."""

    def __init__(self, db_path=None, link=True, validation="warn", dedup=True,
                 dedup_window=3600.0, history_size=1000, source=None,
                 subscriber_name=None, hostname=None, queue=None, retry_handlers=False,
                 max_attempts=None, retry_delay=None, retry_delay_max=None, pipelined=False):
        self._r = None
        self._link = None
        self._queue = None
        self._own_queue = False
        self._lock = threading.RLock()
        self._subs = {}
        self._closed = False
        self._retry_handlers = bool(retry_handlers)
        self._names = {}  # (type code or None, name) -> how many took it
        if validation not in _VALIDATION:
            raise ValueError("validation is 'off', 'warn' or 'strict', not %r" % (validation,))
        if pipelined and retry_handlers:
            raise ValueError("pipelined=True cannot be combined with retry_handlers=True: "
                             "handler retries need each event's id when it is dispatched")
        if link:
            from .queue import Queue

            if queue is None:
                queue = Queue(db_path, hostname=hostname)
                self._own_queue = True
            self._queue = queue
            # Local events carry the name the queue writes.
            hostname = queue.hostname
        opts = ctypes.c_void_p()
        _lib.check(lib.rre_router_options_create(ctypes.byref(opts)))
        try:
            _lib.check(lib.rre_router_options_set_validation(opts, _VALIDATION[validation]))
            _lib.check(lib.rre_router_options_set_dedup(opts, bool(dedup)))
            _lib.check(lib.rre_router_options_set_dedup_window(opts, float(dedup_window)))
            _lib.check(lib.rre_router_options_set_history_size(opts, int(history_size)))
            if source:
                _lib.check(lib.rre_router_options_set_source(opts, enc(source)))
            if hostname:
                _lib.check(lib.rre_router_options_set_hostname(opts, enc(hostname)))
            r = ctypes.c_void_p()
            _lib.check(lib.rre_router_create(ctypes.byref(r), opts))
            self._r = r
        except BaseException:
            if self._own_queue:
                self._queue.close()
            raise
        finally:
            lib.rre_router_options_destroy(opts)
        _ROUTERS.add(self)
        if link:
            try:
                lo = _lib.LinkOptions()
                lo.subscriber_name = enc(subscriber_name)
                if pipelined:
                    lo.flags |= 0x10  # RRE_LINK_PIPELINED
                if retry_handlers:
                    lo.flags |= 0x8  # RRE_LINK_HANDLER_RETRIES
                    if max_attempts is not None:
                        lo.max_attempts = max(int(max_attempts), 1)
                    if retry_delay is not None:
                        lo.retry_delay_s = float(retry_delay)
                    if retry_delay_max is not None:
                        lo.retry_delay_max_s = float(retry_delay_max)
                ln = ctypes.c_void_p()
                _lib.check(lib.rre_link_create(ctypes.byref(ln), self._r, queue._handle(),
                                               ctypes.byref(lo)))
                self._link = ln
                queue._dependents.add(self)
            except BaseException:
                self.close()
                raise

    # -- life cycle ---------------------------------------------------------

    def _queue_closing(self):
        """The queue is closing under this router: the link goes (its reader
        thread stops); the router goes on in-process."""
        with self._lock:
            ln, self._link = self._link, None
        if ln is not None:
            lib.rre_link_destroy(ln)

    def _handle(self):
        if self._r is None:
            raise _closed_error()
        return self._r

    def close(self):
        """Stops the link and the router and frees them (idempotent)."""
        with self._lock:
            if self._r is None:
                return
            r, ln = self._r, self._link
            self._link = None
            self._closed = True
        if ln is not None:
            lib.rre_link_destroy(ln)
        lib.rre_router_close(r)
        lib.rre_router_destroy(r)
        with self._lock:
            self._r = None
            self._subs.clear()
        if self._queue is not None and self._own_queue:
            self._queue.close()
        self._queue = None
        _ROUTERS.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def queue(self):
        return self._queue

    def flush(self, timeout=None):
        """With pipelined=True: waits until every event published so far is
        committed to the queue; raises rre.Error when some of this router's
        events were not stored (since the previous flush), rre.errors
        timeout error after `timeout` seconds. Without it, a no-op."""
        if self._link is None:
            return
        ms = -1 if timeout is None else max(int(timeout * 1000), 0)
        _lib.check(lib.rre_link_flush(self._link, ms))

    def sync(self, timeout=5.0):
        """Waits until the queue reader has delivered every event other
        processes committed before this call (RRE_ETIMEOUT after `timeout`)."""
        if self._link is None:
            return
        _lib.check(lib.rre_link_sync(self._link, int(timeout * 1000)))

    # -- subscribing --------------------------------------------------------

    def subscribe(self, event_type, handler, name=None):
        """Calls `handler(event)` for every event of `event_type` (an enum
        member or any spelling; None or "*" for every event). Returns an id
        for unsubscribe()."""
        if not callable(handler):
            raise TypeError("the handler must be callable")
        sub = _Subscription()
        sub.router = weakref.ref(self)
        sub.handler = handler
        sub.is_coro = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None))
        sub.loop = _running_loop()
        sub.name = name or getattr(handler, "__qualname__", None) or repr(handler)
        sub.name = sub.name[:120]
        if self._retry_handlers:
            # A handler's retries are kept under its name: two handlers of
            # one type must not share it ("<lambda>", "<lambda>#2", ... in
            # the order they subscribe, so the same after a restart).
            key = (None if event_type in (None, "*") else catalog.code_of(event_type), sub.name)
            with self._lock:
                taken = self._names.get(key, 0)
                self._names[key] = taken + 1
            if taken:
                sub.name = "%s#%d" % (sub.name[:110], taken + 1)
        sub.cfn = _lib.HANDLER_FN(lambda ev, _ud, s=sub: _deliver(s, ev))
        sid = ctypes.c_uint64()
        with self._lock:
            r = self._handle()
            if event_type is None or event_type == "*":
                st = lib.rre_router_subscribe_all(r, enc(sub.name), sub.cfn, None,
                                                  ctypes.byref(sid))
            else:
                code = catalog.code_of(event_type)
                st = lib.rre_router_subscribe(r, code, enc(sub.name), sub.cfn, None,
                                              ctypes.byref(sid))
            _lib.check(st)
            sub.sid = sid.value
            key = (None if event_type in (None, "*") else catalog.code_of(event_type), handler)
            self._subs.setdefault(key, []).append(sub)
        return sub.sid

    def unsubscribe(self, event_type, handler=None):
        """Removes `handler` from `event_type` (or, with one argument, the
        subscription id subscribe() returned). Returns whether one was
        removed."""
        with self._lock:
            if handler is None and isinstance(event_type, int):
                for key, subs in list(self._subs.items()):
                    for s in subs:
                        if s.sid == event_type:
                            subs.remove(s)
                            return self._drop(s, key, subs)
                return False
            key = (None if event_type in (None, "*") else catalog.code_of(event_type), handler)
            subs = self._subs.get(key)
            if not subs:
                return False
            s = subs.pop()
            return self._drop(s, key, subs)

    def _drop(self, s, key, subs):
        if not subs:
            self._subs.pop(key, None)
        if self._r is not None:
            lib.rre_router_unsubscribe(self._r, s.sid)
        return True

    # -- publishing ---------------------------------------------------------

    def publish_sync(self, event_type, payload=None, source=None, timestamp=None,
                     trace_id=None, local_only=False, dedup=True):
        """Publishes an event and delivers it to the handlers of this
        process (plain ones before returning; coroutines are scheduled on
        their loop). Returns the RouterEvent; a duplicate within the window
        comes back with duplicate=True and was delivered to no one. Strict
        validation refuses an invalid payload with InvalidPayloadError."""
        ev, coros = self._publish(event_type, payload, source, timestamp, trace_id,
                                  local_only, dedup)
        for coro, sub in coros:
            _schedule(sub, coro, None)
        return ev

    async def publish(self, event_type, payload=None, source=None, timestamp=None,
                      trace_id=None, local_only=False, dedup=True):
        """The coroutine form: also awaits the coroutine handlers that this
        publish started on the running loop."""
        ev, coros = self._publish(event_type, payload, source, timestamp, trace_id,
                                  local_only, dedup)
        import asyncio  # imported already: this coroutine runs on its loop

        loop = asyncio.get_running_loop()
        waits = []
        for coro, sub in coros:
            if sub.loop is None or sub.loop is loop:
                waits.append(_guarded(sub, coro))
            else:
                _schedule(sub, coro, loop)
        if waits:
            await asyncio.gather(*waits)
        return ev

    def _publish(self, event_type, payload, source, timestamp, trace_id, local_only, dedup):
        spelling = _SPELLINGS.get(event_type)
        if spelling is None:
            spelling = enc(catalog.spelling_of(event_type))
            if len(_SPELLINGS) < 4096:
                _SPELLINGS[event_type] = spelling
        if payload is None:
            payload = {}
        elif not isinstance(payload, dict) and hasattr(payload, "keys"):
            payload = dict(payload)
        data = _lib.to_json_text(payload)
        depth = getattr(_local, "depth", 0)
        pool = getattr(_local, "pool", None)
        if pool is None:
            pool = _local.pool = []
        if depth == len(pool):
            pool.append((_lib.PublishOptions(), _lib.PublishResult()))
        opts, res = pool[depth]
        if source is None and timestamp is None and trace_id is None and dedup \
                and not local_only:
            optsp = None
        else:
            opts.flags = (0x4 if local_only else 0) | (0 if dedup else 0x2)
            opts.source = enc(source)
            opts.timestamp = enc(timestamp)
            opts.trace_id = enc(trace_id)
            optsp = ctypes.byref(opts)
        r = self._r
        if r is None:
            raise _closed_error()
        started = []
        delivered = []
        outer = getattr(_local, "ctx", None)
        _local.ctx = (started, payload, delivered)
        _local.depth = depth + 1
        try:
            st = lib.rre_router_publish_text(r, spelling, data, len(data), optsp,
                                             ctypes.byref(res))
        finally:
            _local.ctx = outer
            _local.depth = depth
        if st == 7:
            err = _lib.errors.from_status(st, _lib.last_error())
            err.problems = _problems(res)
            raise err
        if st != 0 and res.sink_status == 0:
            _lib.check(st)
        if st != 0:
            log.warning("rre: the event was delivered, but the queue refused it: %s",
                        _lib.last_error())
        if delivered and not res.duplicate:
            # The event the handlers got (they may keep it): returned as is,
            # with what only the publish knows.
            ev = delivered[0]
            ev.delivered = res.delivered
            if res.problems.count:
                ev.problems = _problems(res)
            return ev, started
        ev = RouterEvent(
            event_type=_NAMES[res.type],
            payload=payload,
            source=source or "",
            timestamp=res.timestamp.decode(),
            trace_id=res.trace_id.decode(),
            content_hash=bytes(res.hash).hex(),
            event_id=res.event_id,
            origin="local",
            duplicate=res.duplicate,
            delivered=res.delivered,
            problems=_problems(res) if res.problems.count else [],
        )
        return ev, started

    # -- looking at it ------------------------------------------------------

    def get_stats(self):
        """The router's statistics: events_published, duplicates_prevented,
        events_routed_by_type (keyed by canonical NAME), handler_failures..."""
        out = ctypes.c_void_p()
        _lib.check(lib.rre_router_stats_json(self._handle(), ctypes.byref(out)))
        stats = _lib.take_json(out)
        stats["events_routed_by_type"] = stats.get("routed_by_type", {})
        stats["total_events_routed"] = stats.get("events_published", 0) + stats.get(
            "events_injected", 0)
        return stats

    def validate_event_flow(self):
        """{"healthy": bool, "issues": [{"kind", "message"}]}"""
        out = ctypes.c_void_p()
        _lib.check(lib.rre_router_validate_flow_json(self._handle(), ctypes.byref(out)))
        return _lib.take_json(out)

    def get_history(self, event_type=None, limit=0):
        """The last events published or received (oldest first)."""
        code = -1 if event_type is None else catalog.code_of(event_type)
        out = ctypes.c_void_p()
        _lib.check(lib.rre_router_history(self._handle(), code, int(limit), ctypes.byref(out)))
        lst = ctypes.cast(out, ctypes.POINTER(_EventList)).contents
        try:
            return [_event_from_c(lst.events[k]) for k in range(lst.count)]
        finally:
            lib.rre_event_list_free(out)


class _EventList(ctypes.Structure):
    _fields_ = [("count", ctypes.c_size_t), ("events", ctypes.POINTER(_lib.Event))]


lib.rre_event_list_free.restype = None
lib.rre_event_list_free.argtypes = [ctypes.c_void_p]

_ROUTERS = weakref.WeakSet()


def _closed_error():
    return _lib.errors.ClosedError("RRE_ECLOSED", "the router is closed")


def _deliver(sub, evp):
    """Called by the library (any thread) for one event and one handler."""
    try:
        cev = evp.contents
        ctx = getattr(_local, "ctx", None)
        # An event this thread is publishing right now (delivered before the
        # publish returns): its payload is the caller's dict, as published;
        # no need to write it out and read it back.
        if ctx is not None and cev.origin == 0:
            if ctx[2]:
                ev = ctx[2][0]
            else:
                ev = _event_from_c(cev, ctx[1])
                ctx[2].append(ev)
        else:
            ev = _event_from_c(cev)
        result = sub.handler(ev)
        if inspect.isawaitable(result):
            started = ctx[0] if ctx is not None else None
            if started is not None:
                started.append((result, sub))
            else:
                _schedule(sub, result, None)
        return 0
    except Exception as e:
        from .queue import _status_of

        if not isinstance(e, (_lib.errors.RetryLater, _lib.errors.Rejected)):
            log.exception("rre: handler %s failed on %s", sub.name,
                          catalog.TYPES[evp.contents.type].name)
        # The status and message are what a linked router with handler
        # retries records (RetryLater and Rejected keep their meaning).
        detail = e.detail if isinstance(e, _lib.errors.Error) else str(e)
        text = "%s: %s" % (type(e).__name__, detail) if detail else type(e).__name__
        return lib.rre_fail(_status_of(e), enc(text))
    except BaseException:  # SystemExit, KeyboardInterrupt in a C thread: report, go on
        return lib.rre_fail(20, b"interrupted")


async def _guarded(sub, coro):
    try:
        await coro
    except Exception as e:
        _report_async_failure(sub, coro, e)


def _running_loop():
    """The asyncio loop running in this thread, or None. asyncio is not
    imported for it (no loop can run before it is), so that `import rre`
    does not load asyncio, and with it the ssl module and OpenSSL: several
    MiB a daemon without coroutines does not need."""
    aio = sys.modules.get("asyncio")
    if aio is None:
        return None
    try:
        return aio.get_running_loop()
    except RuntimeError:
        return None


def _schedule(sub, coro, fallback_loop):
    loop = sub.loop or fallback_loop or _running_loop()
    if loop is None or loop.is_closed():
        log.warning("rre: coroutine handler %s has no running event loop; the event is "
                    "dropped for it", sub.name)
        coro.close()
        return
    if _running_loop() is loop:
        loop.create_task(_guarded(sub, coro))
    else:
        import asyncio  # imported already: `loop` is one of its loops

        try:
            asyncio.run_coroutine_threadsafe(_guarded(sub, coro), loop)
        except RuntimeError:  # the loop closed meanwhile
            coro.close()


def _report_async_failure(sub, coro, exc):
    log.error("rre: coroutine handler %s failed: %r", sub.name, exc)
    router = sub.router()
    if router is None or router._r is None:
        return
    try:
        router.publish_sync(
            DataEventType.HANDLER_FAILED,
            {"handler_name": sub.name, "error": repr(exc)[:500],
             "event_type": getattr(coro, "__qualname__", "")},
            local_only=False,
        )
    except Exception:
        log.exception("rre: could not report a handler failure")


# -- the module-level API of the original -------------------------------------

_router = None
_router_lock = threading.Lock()


def get_router(db_path=None, **kwargs):
    """The process's router, linked to the host's durable queue (made on
    first use; later calls return the same one and ignore arguments)."""
    global _router
    with _router_lock:
        if _router is None or _router._r is None:
            if db_path is None:
                db_path = os.environ.get("RRE_DB") or None
            _router = Router(db_path=db_path, **kwargs)
        return _router


def reset_router():
    """Closes the process's router; the next get_router() makes a new one."""
    global _router
    with _router_lock:
        r, _router = _router, None
    if r is not None:
        r.close()


async def publish(event_type, payload=None, source=None, **kwargs):
    return await get_router().publish(event_type, payload, source=source, **kwargs)


def publish_sync(event_type, payload=None, source=None, **kwargs):
    return get_router().publish_sync(event_type, payload, source=source, **kwargs)


def subscribe(event_type, handler, name=None):
    return get_router().subscribe(event_type, handler, name=name)


def unsubscribe(event_type, handler=None):
    return get_router().unsubscribe(event_type, handler)


def validate_event_flow():
    return get_router().validate_event_flow()


def get_event_stats():
    return get_router().get_stats()


def _shutdown():
    for r in list(_ROUTERS):
        try:
            r.close()
        except Exception:
            pass


import atexit  # noqa: E402

atexit.register(_shutdown)

__all__ = [
    "Router", "RouterEvent", "EventSource", "DataEventType", "StageEvent", "InvalidPayloadError",
    "get_router", "reset_router", "publish", "publish_sync", "subscribe", "unsubscribe",
    "validate_event_flow", "get_event_stats",
]
