import asyncio
import json
import os
import sys
import subprocess
import threading
import time

import pytest

import rre
from rre import event_router
from rre.data_events import DataEventType
from rre.errors import ClosedError, InvalidPayloadError, UnknownTypeError
from rre.event_router import Router, RouterEvent
from rre.stage_events import StageEvent

from conftest import payload_training


def wait_until(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_plain_handler_receives_the_event_with_its_envelope(db):
    got = []
    with Router(db_path=db) as r:
        r.subscribe(DataEventType.TRAINING_COMPLETED, got.append)
        ev = r.publish_sync("training_completed", payload_training(), source="trainer")
    assert isinstance(ev, RouterEvent) and not ev.duplicate and ev.delivered == 1
    assert ev.event_type == "TRAINING_COMPLETED" and ev.event_id > 0
    (seen,) = got
    assert seen.payload == payload_training()
    assert seen.source == "trainer" and seen.origin == "local"
    assert seen.content_hash == ev.content_hash == rre.content_hash(
        "TRAINING_COMPLETED", payload_training())
    assert seen.trace_id.startswith("00-") and seen.timestamp.endswith("Z")


def test_any_spelling_and_stage_events_reach_the_same_subscribers(db):
    got = []
    with Router(db_path=db) as r:
        r.subscribe("TRAINING_COMPLETED", got.append)
        r.publish_sync(StageEvent.TRAINING_COMPLETE, payload_training(job_id="a"))
        r.publish_sync("Training_Completed", payload_training(job_id="b"))
    assert [e.payload["job_id"] for e in got] == ["a", "b"]


def test_a_duplicate_is_returned_marked_and_delivered_to_no_one(db):
    got = []
    with Router(db_path=db) as r:
        r.subscribe("TRAINING_COMPLETED", got.append)
        first = r.publish_sync("TRAINING_COMPLETED", payload_training())
        second = r.publish_sync("TRAINING_COMPLETED", payload_training())
        stats = r.get_stats()
    assert not first.duplicate and second.duplicate and len(got) == 1
    assert stats["duplicates_prevented"] == 1
    assert stats["events_routed_by_type"] == {"TRAINING_COMPLETED": 1}


def test_async_handlers_run_on_the_loop_and_publish_awaits_them(db):
    order = []

    async def slow(ev):
        await asyncio.sleep(0.05)
        order.append(("async", ev.payload["job_id"]))

    async def main():
        with Router(db_path=db) as r:
            r.subscribe("TRAINING_COMPLETED", slow)
            r.subscribe("TRAINING_COMPLETED", lambda ev: order.append(("sync", ev.payload["job_id"])))
            await r.publish("TRAINING_COMPLETED", payload_training(job_id="x"))
            order.append(("returned", None))

    asyncio.run(main())
    assert order == [("sync", "x"), ("async", "x"), ("returned", None)]


def test_a_failing_handler_is_reported_and_others_still_run(db):
    got, reports = [], []

    def bad(ev):
        raise RuntimeError("boom")

    with Router(db_path=db) as r:
        r.subscribe("HANDLER_FAILED", reports.append)
        r.subscribe("TRAINING_COMPLETED", bad)
        r.subscribe("TRAINING_COMPLETED", got.append)
        ev = r.publish_sync("TRAINING_COMPLETED", payload_training())
        assert wait_until(lambda: len(reports) == 1)
        assert r.get_stats()["handler_failures"] == 1
    assert len(got) == 1 and ev.delivered == 2
    assert reports[0].payload["event_type"] == "TRAINING_COMPLETED"


def test_a_failing_coroutine_handler_is_reported_as_handler_failed(db):
    reports = []

    async def bad(ev):
        raise ValueError("nope")

    async def main():
        with Router(db_path=db) as r:
            r.subscribe("HANDLER_FAILED", reports.append)
            r.subscribe("TRAINING_COMPLETED", bad)
            await r.publish("TRAINING_COMPLETED", payload_training())
            assert wait_until(lambda: len(reports) == 1)

    asyncio.run(main())
    assert "nope" in reports[0].payload["error"]


def test_strict_validation_raises_with_the_problems(db):
    with Router(db_path=db, validation="strict") as r:
        with pytest.raises(InvalidPayloadError) as e:
            r.publish_sync("TRAINING_COMPLETED", payload_training(epochs="x"))
        assert e.value.status == "RRE_EINVALID_PAYLOAD"
        assert e.value.problems == ["field 'epochs': expected int, found string"]
        with pytest.raises(UnknownTypeError):
            r.publish_sync("NOT_A_TYPE", {})


def test_warn_validation_lets_the_event_through_with_its_problems(db):
    with Router(db_path=db) as r:
        ev = r.publish_sync("TRAINING_COMPLETED", {"config_key": "hex8_2p"})
    assert not ev.duplicate and ev.problems


def test_unsubscribe_by_handler_and_by_id(db):
    got = []
    with Router(db_path=db) as r:
        r.subscribe("TRAINING_COMPLETED", got.append)
        sid = r.subscribe("TRAINING_STARTED", got.append)
        assert r.unsubscribe("TRAINING_COMPLETED", got.append)
        assert not r.unsubscribe("TRAINING_COMPLETED", got.append)
        assert r.unsubscribe(sid)
        r.publish_sync("TRAINING_COMPLETED", payload_training())
        r.publish_sync("TRAINING_STARTED", {"config_key": "hex8_2p"})
    assert got == []


def test_history_and_flow_validation(db):
    with Router(db_path=db) as r:
        r.publish_sync("TRAINING_COMPLETED", payload_training(job_id="j1"))
        hist = r.get_history()
        flow = r.validate_event_flow()
    assert [e.event_type for e in hist] == ["TRAINING_COMPLETED"]
    assert flow["healthy"] is False and flow["issues"][0]["kind"] == "lifecycle"


def test_a_closed_router_raises_and_close_is_idempotent(db):
    r = Router(db_path=db)
    r.close()
    r.close()
    with pytest.raises(ClosedError):
        r.publish_sync("TRAINING_COMPLETED", payload_training())
    with pytest.raises(ClosedError):
        r.subscribe("TRAINING_COMPLETED", print)
    with pytest.raises(TypeError):
        Router(db_path=db, link=False).subscribe("TRAINING_COMPLETED", 42)


def test_module_level_api_uses_one_router_linked_to_rre_db(db, monkeypatch):
    monkeypatch.setenv("RRE_DB", db)
    got = []
    event_router.subscribe(DataEventType.MODEL_PROMOTED, got.append)
    ev = asyncio.run(event_router.publish(DataEventType.MODEL_PROMOTED,
                                          {"config_key": "hex8_2p", "model_path": "/m",
                                           "new_elo": 1700.0}, source="promoter"))
    assert event_router.get_router().queue.path == db
    assert got and ev.event_id > 0
    assert event_router.get_event_stats()["events_published"] == 1
    assert event_router.validate_event_flow()["healthy"] in (True, False)
    event_router.reset_router()
    assert event_router.get_router() is not None


def test_an_event_published_by_the_c_tool_reaches_a_python_handler(db, rre_cli):
    got = []
    with Router(db_path=db) as r:
        r.subscribe("TRAINING_COMPLETED", got.append)
        out = subprocess.run([rre_cli, "--db", db, "publish", "TRAINING_COMPLETED",
                              "--payload", json.dumps(payload_training()), "--source", "c-tool"],
                             capture_output=True, text=True, check=True)
        r.sync(10)
        assert wait_until(lambda: len(got) == 1)
    assert got[0].origin == "process" and got[0].source == "c-tool"
    assert got[0].event_id == json.loads(out.stdout)["event_id"]


def test_a_c_process_reads_what_python_publishes(db, rre_cli):
    with Router(db_path=db) as r:
        r.publish_sync("TRAINING_COMPLETED", payload_training(), source="py")
    out = subprocess.run([rre_cli, "--db", db, "tail", "--format", "json"],
                         capture_output=True, text=True, check=True)
    (line,) = out.stdout.splitlines()
    row = json.loads(line)
    assert row["type"] == "TRAINING_COMPLETED" and row["payload"]["epochs"] == 50
    assert row["source"] == "py"


def test_coroutine_handlers_get_events_from_other_threads_on_their_loop(db, rre_cli):
    got = []

    async def handler(ev):
        got.append((ev.payload["job_id"], threading.current_thread() is threading.main_thread()))

    async def main():
        with Router(db_path=db) as r:
            r.subscribe("TRAINING_COMPLETED", handler)
            subprocess.run([rre_cli, "--db", db, "publish", "TRAINING_COMPLETED",
                            "--payload", json.dumps(payload_training(job_id="other"))],
                           capture_output=True, check=True)
            for _ in range(500):
                if got:
                    break
                await asyncio.sleep(0.01)

    asyncio.run(main())
    assert got == [("other", True)]


def test_a_handler_may_block_and_publish_again_without_deadlock(db):
    got = []
    with Router(db_path=db) as r:
        def chain(ev):
            r.publish_sync("TRAINING_STARTED", {"config_key": "hex8_2p", "job_id": "n"})

        r.subscribe("TRAINING_COMPLETED", chain)
        r.subscribe("TRAINING_STARTED", got.append)
        r.publish_sync("TRAINING_COMPLETED", payload_training())
    assert len(got) == 1


def test_interpreter_exit_with_a_handler_running_on_the_reader_thread(db, rre_cli, tmp_path):
    script = tmp_path / "daemon.py"
    script.write_text(
        "import sys, time, threading\n"
        "sys.path.insert(0, %r)\n"
        "from rre.event_router import get_router\n"
        "started = threading.Event()\n"
        "def slow(ev):\n"
        "    started.set()\n"
        "    time.sleep(0.2)\n"
        "get_router(db_path=%r).subscribe('TRAINING_STARTED', slow)\n"
        "print('ready', flush=True)\n"
        "started.wait(20)\n"
        "print('exiting', flush=True)\n" % (os.path.dirname(os.path.dirname(__file__)), db))
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    for i in range(5):
        subprocess.run([rre_cli, "--db", db, "publish", "TRAINING_STARTED", "--payload",
                        json.dumps({"config_key": "hex8_2p", "job_id": "j%d" % i})],
                       capture_output=True, check=True)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "exiting" in out and "Fatal Python error" not in err


def test_local_handlers_share_the_published_event_and_payload(db):
    got = []
    with Router(db_path=db) as r:
        r.subscribe("TRAINING_COMPLETED", got.append)
        r.subscribe("TRAINING_COMPLETED", got.append)
        payload = payload_training()
        ev = r.publish_sync("TRAINING_COMPLETED", payload)
    assert got[0] is got[1] is ev and ev.payload is payload and ev.delivered == 2


def test_queue_batch_publish_is_all_or_nothing_and_reports_duplicates(db):
    import rre

    with rre.Queue(db) as q:
        got = q.publish_batch([("TRAINING_STARTED", {"config_key": "hex8_2p", "n": i})
                               for i in range(3)] + [("TRAINING_STARTED",
                                                      {"config_key": "hex8_2p", "n": 0})],
                              source="batch")
        assert [d for _, d in got] == [False, False, False, True]
        assert [i for i, _ in got[:3]] == sorted(i for i, _ in got[:3])
        with pytest.raises(UnknownTypeError):
            q.publish_batch([("TRAINING_STARTED", {"n": 9}), ("NOPE", {})])
        with pytest.raises(TypeError):
            q.publish_batch([("TRAINING_STARTED",)])
        assert q.publish_batch([]) == []
        events = rre.Subscriber(q, since_id=0).poll(timeout=1.0)
    assert [e.payload.get("n") for e in events] == [0, 1, 2]
    assert {e.source for e in events} == {"batch"}



def test_subscriber_payloads_equal_what_was_published_and_cursor_only_writes_no_acks(db):
    import sqlite3

    published = [{"config_key": "hex8_2p", "n": i, "loss": 0.0423, "who": "z\u00fcrich",
                  "nested": {"b": [1, 2.5, None, True]}} for i in range(3)]
    with rre.Queue(db) as q:
        for p in published:
            q.publish("TRAINING_STARTED", p, source="t")
        # A row another writer stored, in the Python side's own format.
        con = sqlite3.connect(db)
        con.execute("INSERT INTO events (event_type, payload, source, hostname, created_at)"
                    " VALUES ('training_started', ?, 'py', 'py-host', strftime('%s','now'))",
                    (json.dumps({"config_key": "sq8_4p", "n": 3, "x": float("nan")}),))
        con.commit()
        with q.subscriber("fast", cursor_only=True) as fast, q.subscriber("compat") as compat:
            got_fast = fast.poll(timeout=1.0)
            got_compat = compat.poll(timeout=1.0)
        acks = dict(con.execute("SELECT subscriber_id, count(*) FROM acks GROUP BY 1").fetchall())
        con.close()
    for got in (got_fast, got_compat):
        assert [e.payload for e in got[:3]] == published
        assert got[3].payload["config_key"] == "sq8_4p" and got[3].payload["x"] is None
    assert not any(k.endswith(":stable:fast") for k in acks)
    assert [v for k, v in acks.items() if k.endswith(":stable:compat")] == [4]

def test_closing_a_queue_first_closes_what_uses_it(db):
    import rre

    q = rre.Queue(db)
    s = q.subscriber("a")
    r = Router(queue=q)
    got = []

    def poll_forever():
        try:
            got.append(q2_sub.poll(30))
        except rre.errors.ClosedError:
            got.append("closed")

    q2 = rre.Queue(db)
    q2_sub = q2.subscriber("b")
    t = threading.Thread(target=poll_forever)
    t.start()
    time.sleep(0.2)
    q2.close()  # wakes the poll in the other thread, then frees
    t.join(10)
    assert got == ["closed"]
    q.close()
    with pytest.raises(ClosedError):
        s.poll(0)
    with pytest.raises(ClosedError):
        q.publish("ELO_UPDATED", {"x": 1})
    # The router goes on in-process without its link.
    seen = []
    r.subscribe("ELO_UPDATED", seen.append)
    ev = r.publish_sync("ELO_UPDATED", {"x": 1})
    assert seen == [ev] and ev.event_id == 0
    r.close()
    q.close()


def test_local_events_carry_the_host_name_the_queue_writes(db):
    got = []
    with Router(db_path=db, hostname="gpu-07.cluster") as r:
        r.subscribe("ELO_UPDATED", got.append)
        r.publish_sync("ELO_UPDATED", {"x": 1})
        assert r.queue.hostname == "gpu-07.cluster"
    assert got[0].hostname == "gpu-07.cluster"


def test_import_rre_loads_neither_asyncio_nor_ssl_and_coroutines_work_after(db, tmp_path):
    """`import rre` and get_router() leave asyncio (and with it ssl and
    OpenSSL, several MiB) unloaded; a daemon that imports asyncio afterwards
    still gets its coroutine handlers called on its loop."""
    script = tmp_path / "late_asyncio.py"
    script.write_text(
        "import sys\n"
        "sys.path.insert(0, %r)\n"
        "import rre\n"
        "from rre.event_router import get_router\n"
        "r = get_router(db_path=%r)\n"
        "print('loaded', 'asyncio' in sys.modules, 'ssl' in sys.modules, flush=True)\n"
        "import asyncio\n"
        "got = []\n"
        "async def handler(ev):\n"
        "    await asyncio.sleep(0)\n"
        "    got.append(ev.event_type)\n"
        "async def main():\n"
        "    r.subscribe('TRAINING_STARTED', handler)\n"
        "    await r.publish('TRAINING_STARTED', {'config_key': 'hex8_2p', 'job_id': 'j'})\n"
        "asyncio.run(main())\n"
        "print('got', got, flush=True)\n" % (os.path.dirname(os.path.dirname(__file__)), db))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "loaded False False"
    assert lines[1] == "got ['TRAINING_STARTED']"
