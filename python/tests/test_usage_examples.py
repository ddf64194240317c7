"""The catalog's Python usage examples, run as written: only the module
prefixes app.coordination / app.distributed become rre. Names the examples
use without defining (start_evaluation, logger, the coordinator's trigger
methods) are given to them as small stand-ins that record their calls.

Examples whose text holds placeholders (`...` as an argument, `{...}` as a
payload) are not valid or meaningful Python and are left out."""

import ast
import asyncio
import logging
import textwrap

import pytest

from rre import event_router

from conftest import payload_training


def as_rre(code):
    code = code.replace("app.coordination.", "rre.").replace("app.distributed.", "rre.")
    return textwrap.dedent(code)


def run_example(code, namespace):
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    compiled = compile(as_rre(code), "<catalog example>", "exec", flags=flags)
    result = eval(compiled, namespace)
    if asyncio.iscoroutine(result):
        asyncio.get_event_loop_policy().get_event_loop().run_until_complete(result)
    return namespace


@pytest.fixture
def ns(db, monkeypatch):
    monkeypatch.setenv("RRE_DB", db)
    calls = []

    async def start_evaluation(model_id=None):
        calls.append(("start_evaluation", model_id))

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield {"calls": calls, "start_evaluation": start_evaluation,
           "logger": logging.getLogger("example")}
    event_router.reset_router()
    loop.close()
    asyncio.set_event_loop(None)


EMITTING = '''
from app.coordination.event_emitters import (
    emit_training_complete,
    emit_selfplay_complete,
    emit_evaluation_complete,
    emit_promotion_complete,
)

# Emit training completion
await emit_training_complete(
    job_id="square8_2p_123",
    board_type="square8",
    num_players=2,
    success=True,
    final_loss=0.05,
    final_elo=1650.0,
    model_path="models/square8_2p_new.pth",
    epochs_completed=20,
)

# Emit selfplay completion
await emit_selfplay_complete(
    task_id="selfplay_001",
    board_type="hex8",
    num_players=2,
    games_generated=500,
    success=True,
    node_id="runpod-h100",
    duration_seconds=120.5,
    selfplay_type="gpu_accelerated",
)

# Emit evaluation completion
await emit_evaluation_complete(
    model_id="hex8_2p_v123",
    board_type="hex8",
    num_players=2,
    success=True,
    win_rate=0.75,
    elo_delta=50.0,
    games_played=100,
)
'''

ROUTER_DIRECTLY = '''
from app.coordination.event_router import publish, DataEventType

# Publish with typed event
await publish(
    event_type=DataEventType.TRAINING_COMPLETED,
    payload={
        "config_key": "square8_2p",
        "model_id": "sq8_2p_v456",
        "val_loss": 0.05,
        "epochs": 20,
    },
    source="training_daemon",
)
'''

BASIC_SUBSCRIPTION = '''
from app.coordination.event_router import subscribe, RouterEvent, DataEventType

async def handle_training_complete(event: RouterEvent):
    config = event.payload.get("config_key")
    model_id = event.payload.get("model_id")
    print(f"Training complete for {config}: {model_id}")

    # Trigger evaluation
    await start_evaluation(model_id)

# Subscribe to specific event
subscribe(DataEventType.TRAINING_COMPLETED, handle_training_complete)
'''

COORDINATOR = '''
from app.coordination.event_router import get_router, DataEventType, StageEvent

class MyCoordinator:
    def __init__(self):
        self.router = get_router()
        self._register_handlers()

    def _register_handlers(self):
        """Register event handlers."""
        self.router.subscribe(StageEvent.SELFPLAY_COMPLETE, self._on_selfplay_done)
        self.router.subscribe(DataEventType.TRAINING_COMPLETED, self._on_training_done)
        self.router.subscribe(DataEventType.EVALUATION_COMPLETED, self._on_eval_done)

    async def _on_selfplay_done(self, event):
        if event.payload.get("success"):
            games = event.payload.get("games_generated", 0)
            print(f"Selfplay generated {games} games, triggering sync")
            await self.trigger_sync()

    async def _on_training_done(self, event):
        model_id = event.payload.get("model_id")
        print(f"Training done: {model_id}, triggering evaluation")
        await self.trigger_evaluation(model_id)

    async def _on_eval_done(self, event):
        elo = event.payload.get("elo")
        if elo > 1700:
            print(f"High Elo {elo}, triggering promotion")
            await self.trigger_promotion(event.payload.get("model_id"))
'''

HANDLE_FAILURES = '''
async def handle_training_complete(event: RouterEvent):
    try:
        model_id = event.payload.get("model_id")
        if not model_id:
            logger.warning("Training complete event missing model_id")
            return

        await start_evaluation(model_id)
    except Exception as e:
        logger.error(f"Failed to start evaluation: {e}")
        # Don't raise - let other handlers run
'''

INSPECT_FLOW = '''
from app.coordination.event_router import get_router

router = get_router()

# See what events have been routed
stats = router.get_stats()
print(f"Events by type: {stats['events_routed_by_type']}")

# Check for event loops
if stats['duplicates_prevented'] > 1000:
    print("WARNING: High duplicate rate, possible event loop")
'''

VALIDATE_FLOW = '''
from app.coordination.event_router import validate_event_flow

result = validate_event_flow()
'''

MIGRATION_OLD_BUS = '''
from app.distributed.data_events import get_event_bus, DataEvent, DataEventType

bus = get_event_bus()
await bus.publish(DataEvent(
    event_type=DataEventType.TRAINING_COMPLETED,
    payload={"model_id": "..."}
))
'''

DEBUG_LOGGING = '''
import logging
logging.getLogger("app.coordination.event_router").setLevel(logging.DEBUG)
'''


def test_emitting_events_with_the_example_emitters(ns):
    got = []
    event_router.subscribe("*", got.append)
    run_example(EMITTING, ns)
    assert [e.event_type for e in got] == ["TRAINING_COMPLETED", "SELFPLAY_COMPLETE",
                                          "EVALUATION_COMPLETED"]


def test_publishing_with_the_router_directly(ns):
    got = []
    event_router.subscribe("TRAINING_COMPLETED", got.append)
    run_example(ROUTER_DIRECTLY, ns)
    assert got[0].payload["model_id"] == "sq8_2p_v456" and got[0].source == "training_daemon"


def test_basic_subscription(ns, capsys):
    run_example(BASIC_SUBSCRIPTION, ns)
    asyncio.get_event_loop().run_until_complete(
        event_router.publish("TRAINING_COMPLETED", payload_training(model_id="m7")))
    assert ns["calls"] == [("start_evaluation", "m7")]
    assert "Training complete for hex8_2p: m7" in capsys.readouterr().out


def test_pipeline_coordinator_pattern(ns, capsys):
    run_example(COORDINATOR, ns)
    calls = ns["calls"]

    class Coordinator(ns["MyCoordinator"]):
        async def trigger_sync(self):
            calls.append(("sync",))

        async def trigger_evaluation(self, model_id):
            calls.append(("evaluation", model_id))

        async def trigger_promotion(self, model_id):
            calls.append(("promotion", model_id))

    Coordinator()
    loop = asyncio.get_event_loop()
    loop.run_until_complete(event_router.publish(
        "SELFPLAY_COMPLETE", {"config_key": "hex8_2p", "games_completed": 5, "success": True,
                              "games_generated": 5}))
    loop.run_until_complete(event_router.publish("TRAINING_COMPLETED",
                                                 payload_training(model_id="m1")))
    loop.run_until_complete(event_router.publish(
        "EVALUATION_COMPLETED", {"config_key": "hex8_2p", "board_type": "hex8",
                                 "num_players": 2, "model_path": "/m", "elo": 1750.0,
                                 "games_played": 10, "win_rate": 0.6, "model_id": "m1"}))
    assert calls == [("sync",), ("evaluation", "m1"), ("promotion", "m1")]
    assert "High Elo 1750.0, triggering promotion" in capsys.readouterr().out


def test_handler_that_handles_its_failures(ns):
    from rre.event_router import RouterEvent

    ns["RouterEvent"] = RouterEvent
    run_example(HANDLE_FAILURES, ns)
    event_router.subscribe("TRAINING_COMPLETED", ns["handle_training_complete"])
    asyncio.get_event_loop().run_until_complete(
        event_router.publish("TRAINING_COMPLETED", payload_training()))
    assert ns["calls"] == []


def test_debugging_examples(ns, capsys):
    run_example(DEBUG_LOGGING, ns)
    run_example(INSPECT_FLOW, ns)
    run_example(VALIDATE_FLOW, ns)
    assert "Events by type: {}" in capsys.readouterr().out
    assert ns["result"] == {"healthy": True, "issues": []}


def test_migration_guide_old_event_bus(ns):
    got = []
    event_router.subscribe("TRAINING_COMPLETED", got.append)
    run_example(MIGRATION_OLD_BUS, ns)
    assert got[0].payload == {"model_id": "..."}
