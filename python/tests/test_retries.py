"""Retries and dead letters from Python: a durable subscriber's handler
that raises is retried, RetryLater and Rejected mean what they say, and the
dead letters are listed, shown, replayed and dropped through the Queue."""

import threading
import time

import pytest

import rre
from rre.errors import NotFoundError, Rejected, RetryLater


def _publish(q, *values):
    return [q.publish("ELO_UPDATED", {"i": v})[0] for v in values]


def _process_until(sub, handler, seen, want, limit=10.0):
    end = time.monotonic() + limit
    while len(seen) < want and time.monotonic() < end:
        sub.process(handler, timeout=0.05)


def test_handler_exception_is_retried_then_handled(db):
    with rre.Queue(db) as q:
        _publish(q, 1, 2)
        sub = q.subscriber("py", retry_delay=0.05)
        seen = []

        def handler(ev):
            seen.append(ev.payload["i"])
            if ev.payload["i"] == 1 and seen.count(1) == 1:
                raise OSError("model store unreachable")

        _process_until(sub, handler, seen, 3)
        # 2 passed while 1 waited for its retry (the default order).
        assert seen == [1, 2, 1]
        assert sub.process(handler, timeout=0.2) == 0
        assert q.dead_letters() == []
        assert q.stats()["retrying"] == 0


def test_strict_order_holds_later_events_while_one_retries(db):
    with rre.Queue(db) as q:
        _publish(q, 1, 2)
        sub = q.subscriber("strict", retry_delay=0.05, strict_order=True)
        seen = []

        def handler(ev):
            seen.append(ev.payload["i"])
            if ev.payload["i"] == 1 and seen.count(1) < 3:
                raise ValueError("not yet")

        _process_until(sub, handler, seen, 4)
        assert seen == [1, 1, 1, 2]


def test_exhausted_retries_land_in_the_dead_letters_with_the_exception(db):
    with rre.Queue(db) as q:
        (event_id,) = _publish(q, 5)
        sub = q.subscriber("doomed", max_attempts=2, retry_delay=0.05)
        seen = []

        def handler(ev):
            seen.append(ev.event_id)
            raise KeyError("checkpoint")

        _process_until(sub, handler, seen, 2)
        assert sub.process(handler, timeout=0.3) == 0
        letters = q.dead_letters("doomed")
        assert len(letters) == 1
        d = letters[0]
        assert d["event_id"] == event_id
        assert d["attempts"] == 2
        assert d["subscriber"].endswith(":stable:doomed")
        assert d["error"] == "RRE_EINTERNAL: KeyError: 'checkpoint'"
        full = q.dead_letter(d["id"])
        assert full["payload"]["i"] == 5
        assert q.stats()["dead_letters"] == 1


def test_retry_later_and_rejected(db):
    with rre.Queue(db) as q:
        _publish(q, 1, 2)
        sub = q.subscriber("picky", max_attempts=1, retry_delay=0.05)
        seen = []

        def handler(ev):
            seen.append(ev.payload["i"])
            if ev.payload["i"] == 1 and seen.count(1) < 3:
                raise RetryLater("GPU busy")
            if ev.payload["i"] == 2:
                raise Rejected("board type not served here")

        _process_until(sub, handler, seen, 4)
        assert seen.count(1) == 3  # asked again twice, never counted as failures
        letters = q.dead_letters()
        assert [d["event_id"] for d in letters] == [2]
        assert letters[0]["error"] == "RRE_EREJECTED: Rejected: board type not served here"


def test_replay_and_drop(db):
    with rre.Queue(db) as q:
        _publish(q, 1, 2, 3)
        sub = q.subscriber("replayed", max_attempts=1)
        failing = {1, 2, 3}
        seen = []

        def handler(ev):
            seen.append(ev.payload["i"])
            if ev.payload["i"] in failing:
                raise RuntimeError("down")

        sub.process(handler, timeout=0)
        letters = q.dead_letters()
        assert len(letters) == 3
        assert q.drop_dead_letters(letters[0]["id"]) == 1
        with pytest.raises(NotFoundError):
            q.dead_letter(letters[0]["id"])
        with pytest.raises(ValueError):
            q.drop_dead_letters()
        failing.clear()
        assert q.replay_dead_letters(subscriber="replayed") == 2
        seen.clear()
        _process_until(sub, handler, seen, 2)
        assert sorted(seen) == [2, 3]
        assert q.dead_letters() == []
        assert q.drop_dead_letters(older_than=0) == 0


def test_keyboard_interrupt_stops_and_the_event_comes_again(db):
    with rre.Queue(db) as q:
        _publish(q, 1)
        sub = q.subscriber("interrupted")

        def handler(ev):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            sub.process(handler, timeout=0)
        got = []
        assert sub.process(lambda ev: got.append(ev.payload["i"]), timeout=0) == 1
        assert got == [1]


def test_linked_router_retries_the_failing_handler_alone(db):
    from rre.event_router import Router

    calls = {"scorer": 0, "archiver": 0}
    done = threading.Event()

    def scorer(ev):
        calls["scorer"] += 1
        if calls["scorer"] == 1:
            raise ConnectionError("rating service down")
        done.set()

    def archiver(ev):
        calls["archiver"] += 1

    with Router(db, subscriber_name="daemon", retry_handlers=True, retry_delay=0.05) as r:
        r.subscribe("ELO_UPDATED", scorer, name="scorer")
        r.subscribe("ELO_UPDATED", archiver, name="archiver")
        r.publish_sync("ELO_UPDATED", {"model_id": "m1", "elo": 1500.0})
        assert done.wait(10)
        time.sleep(0.3)
        assert calls == {"scorer": 2, "archiver": 1}


def test_linked_router_handler_dead_letters_carry_the_exception(db):
    from rre.event_router import Router

    with Router(db, subscriber_name="daemon", retry_handlers=True, max_attempts=1) as r:
        def rejecting(ev):
            raise Rejected("unknown board")

        r.subscribe("ELO_UPDATED", rejecting, name="picky")
        r.publish_sync("ELO_UPDATED", {"model_id": "m1", "elo": 1500.0})
        with rre.Queue(db) as q:
            end = time.monotonic() + 10
            while not q.dead_letters() and time.monotonic() < end:
                time.sleep(0.02)
            (d,) = q.dead_letters()
            assert d["subscriber"].endswith(":stable:daemon/picky")
            assert d["error"] == "RRE_EREJECTED: Rejected: unknown board"


def test_linked_router_handlers_of_one_name_get_their_own_retries(db):
    from rre.event_router import Router

    calls = []
    with Router(db, subscriber_name="daemon", retry_handlers=True, retry_delay=0.05) as r:
        r.subscribe("ELO_UPDATED", lambda ev: calls.append("first"))

        def second(ev, _n=[0]):
            calls.append("second")
            _n[0] += 1
            if _n[0] == 1:
                raise RuntimeError("once")

        r.subscribe("ELO_UPDATED", second, name="<lambda>")
        r.publish_sync("ELO_UPDATED", {"model_id": "m1", "elo": 1500.0})
        end = time.monotonic() + 10
        while calls.count("second") < 2 and time.monotonic() < end:
            time.sleep(0.02)
        time.sleep(0.2)
        assert calls.count("first") == 1
        assert calls.count("second") == 2
