"""A router linked with pipelined=True: publishes return before the commit;
flush() and close() make them durable; the combination with handler
retries is refused."""
import sqlite3

import pytest

from rre.event_router import Router

from conftest import payload_training


def stored(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        con.close()


def test_pipelined_publishes_are_all_stored_after_flush_and_seen_by_another_router(db):
    with Router(db_path=db) as other:
        got = []
        other.subscribe("TRAINING_COMPLETED", got.append)
        with Router(db_path=db, pipelined=True) as r:
            local = []
            r.subscribe("TRAINING_COMPLETED", local.append)
            for i in range(2000):
                ev = r.publish_sync("training_completed", payload_training(epochs=i))
                assert not ev.duplicate and ev.event_id == 0
            r.flush()
            assert stored(db) == 2000
            assert len(local) == 2000
            other.sync(timeout=20)
            assert [e.payload["epochs"] for e in got] == list(range(2000))
            for i in range(2000, 2100):
                r.publish_sync("training_completed", payload_training(epochs=i))
        # close() flushed what was still waiting
        assert stored(db) == 2100


def test_pipelined_flush_reports_events_that_were_not_stored(db):
    with Router(db_path=db, pipelined=True) as r:
        r.publish_sync("training_completed", payload_training(epochs=-1))
        r.flush()
        con = sqlite3.connect(db)
        con.execute("CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN"
                    " SELECT RAISE(ABORT, 'refused by the test'); END")
        con.commit()
        for i in range(3):
            r.publish_sync("training_completed", payload_training(epochs=i))
        with pytest.raises(Exception) as err:
            r.flush(timeout=30)
        assert "3 events published on the router were not stored" in str(err.value)
        r.flush()  # reported once
        con.execute("DROP TRIGGER refuse")
        con.commit()
        con.close()
    assert stored(db) == 1


def test_pipelined_and_handler_retries_are_refused_together(db):
    with pytest.raises(ValueError):
        Router(db_path=db, pipelined=True, retry_handlers=True, subscriber_name="d")
