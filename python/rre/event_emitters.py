"""Typed emitters: one `emit_<type>` coroutine per event type whose payload
the catalog gives, made from the library's catalog when the module is
imported (never written by hand, like the C emitters), plus the emitter
names and keyword arguments the catalog's usage examples show.

Every emitter builds the payload, checks it strictly against the schema of
its type (rre.errors.InvalidPayloadError with the problems, before anything
is published), publishes it through the process's router (get_router(),
or the `router=` given) and returns the routed RouterEvent.

Generated emitters, e.g. for TRAINING_COMPLETED:

    await emit_training_completed(config_key="hex8_2p", board_type="hex8",
                                  num_players=2, model_path="/m.pth", epochs=50,
                                  final_loss=0.04, samples_trained=85000,
                                  job_id="j1", source="trainer")

- every field of the type is a keyword argument; a known field left out
  (or None) is absent from the payload;
- a required `config_key` left out is made from `board_type` and
  `num_players` when both are given;
- further fields go in `extra={...}` (the typed ones win on a clash);
- `source`, `timestamp`, `trace_id`, `router` are the publish options.

The catalog's example emitters and how their arguments map to the schemas
(see docs/PYTHON.md for the table):
- emit_training_complete(job_id, board_type, num_players, success,
  final_loss, final_elo, model_path, epochs_completed, ...): success true
  publishes TRAINING_COMPLETED with epochs = epochs_completed, config_key
  made from board and players, samples_trained (default 0), final_elo kept
  as an extra field; success false publishes TRAINING_FAILED with the
  config key, `error` and success false.
- emit_selfplay_complete(task_id, board_type, num_players, games_generated,
  success, node_id, duration_seconds, selfplay_type, ...): SELFPLAY_COMPLETE
  with games_completed = games_generated and the config key made.
- emit_evaluation_complete(model_id, board_type, num_players, success,
  win_rate, elo_delta, games_played, elo=None, model_path=None, ...):
  success true publishes EVALUATION_COMPLETED; model_path defaults to the
  model id, and an Elo not given is written as 0.0 with elo_known false;
  success false publishes EVALUATION_FAILED with model_id and error.
- emit_promotion_complete(model_id, board_type, num_players, success, new_elo,
  previous_elo, model_path, elo_delta, ...): MODEL_PROMOTED (what the stage
  event PROMOTION_COMPLETE resolves to), model_path defaulting to the model
  id and elo_delta to new_elo - previous_elo; success false publishes
  PROMOTION_FAILED.
"""

import inspect
import keyword

from . import catalog
from .errors import InvalidPayloadError
from .event_utils import make_config_key

_PUBLISH_OPTIONS = ("source", "timestamp", "trace_id", "router")


def _router(router):
    if router is not None:
        return router
    from .event_router import get_router

    return get_router()


def _check(event_type, payload):
    from . import validate

    problems = validate(event_type, payload)
    if problems:
        err = InvalidPayloadError(
            "RRE_EINVALID_PAYLOAD",
            "%s: %s" % (event_type, "; ".join(problems)),
        )
        err.problems = problems
        raise err


def _fill_config_key(payload):
    if payload.get("config_key") is None and payload.get("board_type") is not None \
            and payload.get("num_players") is not None:
        payload["config_key"] = make_config_key(payload["board_type"], payload["num_players"])


async def _emit(event_type, payload, extra, source, timestamp, trace_id, router):
    full = dict(extra or {})
    full.update({k: v for k, v in payload.items() if v is not None})
    _fill_config_key(full)
    _check(event_type, full)
    return await _router(router).publish(event_type, full, source=source, timestamp=timestamp,
                                         trace_id=trace_id)


def _make_emitter(info):
    fields = [f for f in info.fields if f.name.isidentifier() and not keyword.iskeyword(f.name)
              and f.name not in _PUBLISH_OPTIONS + ("extra",)]
    names = [f.name for f in fields]
    event_type = info.name

    async def emitter(*, extra=None, source=None, timestamp=None, trace_id=None, router=None,
                      **kwargs):
        unknown = [k for k in kwargs if k not in names]
        if unknown:
            raise TypeError("emit_%s() got unexpected keyword arguments %s (give further "
                            "fields in extra={...})" % (event_type.lower(), ", ".join(unknown)))
        return await _emit(event_type, kwargs, extra, source, timestamp, trace_id, router)

    params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in names]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None)
               for n in ("extra",) + _PUBLISH_OPTIONS]
    emitter.__signature__ = inspect.Signature(params)
    emitter.__name__ = emitter.__qualname__ = "emit_" + event_type.lower()
    emitter.__module__ = __name__
    req = ", ".join(f.name for f in info.fields if f.required) or "none"
    emitter.__doc__ = "%s (%s): %s\nRequired fields: %s. Returns the RouterEvent." % (
        event_type, info.category, info.description, req)
    emitter.event_type = event_type
    return emitter


GENERATED = {}
for _info in catalog.TYPES:
    if _info.has_schema and _info.alias_of is None:
        _fn = _make_emitter(_info)
        GENERATED[_fn.__name__] = _fn
        globals()[_fn.__name__] = _fn


async def emit_training_complete(job_id=None, board_type=None, num_players=None, success=True,
                                 final_loss=None, final_elo=None, model_path=None,
                                 epochs_completed=None, *, config_key=None, samples_trained=0,
                                 duration_seconds=None, early_stopped=None, model_id=None,
                                 val_loss=None, train_loss=None, error=None, extra=None,
                                 source=None, timestamp=None, trace_id=None, router=None):
    """The catalog's example emitter: TRAINING_COMPLETED when success is
    true (epochs = epochs_completed), else TRAINING_FAILED."""
    if not success:
        payload = {"config_key": config_key, "board_type": board_type,
                   "num_players": num_players, "error": error or "training failed",
                   "success": False, "job_id": job_id}
        return await _emit("TRAINING_FAILED", payload, extra, source, timestamp, trace_id,
                           router)
    payload = {
        "config_key": config_key, "board_type": board_type, "num_players": num_players,
        "model_path": model_path, "epochs": epochs_completed, "final_loss": final_loss,
        "samples_trained": samples_trained, "job_id": job_id,
        "duration_seconds": duration_seconds, "early_stopped": early_stopped,
        "model_id": model_id, "val_loss": val_loss, "train_loss": train_loss, "success": True,
        "final_elo": final_elo,
    }
    return await _emit("TRAINING_COMPLETED", payload, extra, source, timestamp, trace_id, router)


async def emit_selfplay_complete(task_id=None, board_type=None, num_players=None,
                                 games_generated=None, success=True, node_id=None,
                                 duration_seconds=None, selfplay_type=None, *, config_key=None,
                                 games_completed=None, total_games=None, model_id=None,
                                 games_per_second=None, iteration=None, error=None, extra=None,
                                 source=None, timestamp=None, trace_id=None, router=None):
    """SELFPLAY_COMPLETE; games_completed defaults to games_generated and
    the config key is made from board_type and num_players."""
    payload = {
        "config_key": config_key, "task_id": task_id, "board_type": board_type,
        "num_players": num_players, "games_generated": games_generated,
        "games_completed": games_completed if games_completed is not None else games_generated,
        "success": bool(success), "node_id": node_id, "duration_seconds": duration_seconds,
        "selfplay_type": selfplay_type, "total_games": total_games, "model_id": model_id,
        "games_per_second": games_per_second, "iteration": iteration, "error": error,
    }
    return await _emit("SELFPLAY_COMPLETE", payload, extra, source, timestamp, trace_id, router)


async def emit_evaluation_complete(model_id=None, board_type=None, num_players=None,
                                   success=True, win_rate=None, elo_delta=None,
                                   games_played=None, *, elo=None, model_path=None,
                                   config_key=None, is_multi_harness=None, harness_results=None,
                                   best_harness=None, composite_participant_ids=None,
                                   opponents=None, error=None, extra=None, source=None,
                                   timestamp=None, trace_id=None, router=None):
    """EVALUATION_COMPLETED when success is true (model_path defaults to
    the model id; an Elo not given is written as 0.0 with elo_known false),
    else EVALUATION_FAILED."""
    if not success:
        payload = {"model_id": model_id, "error": error or "evaluation failed",
                   "config_key": config_key, "board_type": board_type,
                   "num_players": num_players}
        return await _emit("EVALUATION_FAILED", payload, extra, source, timestamp, trace_id,
                           router)
    payload = {
        "config_key": config_key, "board_type": board_type, "num_players": num_players,
        "model_path": model_path if model_path is not None else model_id,
        "elo": elo if elo is not None else 0.0, "elo_known": elo is not None,
        "games_played": games_played, "win_rate": win_rate, "model_id": model_id,
        "elo_delta": elo_delta, "is_multi_harness": is_multi_harness,
        "harness_results": harness_results, "best_harness": best_harness,
        "composite_participant_ids": composite_participant_ids, "opponents": opponents,
        "success": True,
    }
    return await _emit("EVALUATION_COMPLETED", payload, extra, source, timestamp, trace_id,
                       router)


async def emit_promotion_complete(model_id=None, board_type=None, num_players=None, success=True,
                                  new_elo=None, previous_elo=None, model_path=None,
                                  elo_delta=None, *, config_key=None, promotion_type=None,
                                  tier=None, supersedes=None, promoted_at=None, iteration=None,
                                  error=None, extra=None, source=None, timestamp=None,
                                  trace_id=None, router=None):
    """MODEL_PROMOTED (the data event of the stage event PROMOTION_COMPLETE)
    when success is true (model_path defaults to the model id, elo_delta to
    new_elo - previous_elo), else PROMOTION_FAILED with model_id and error."""
    if not success:
        payload = {"model_id": model_id, "error": error or "promotion failed",
                   "config_key": config_key, "board_type": board_type,
                   "num_players": num_players}
        return await _emit("PROMOTION_FAILED", payload, extra, source, timestamp, trace_id,
                           router)
    if elo_delta is None and new_elo is not None and previous_elo is not None:
        elo_delta = new_elo - previous_elo
    payload = {
        "config_key": config_key, "board_type": board_type, "num_players": num_players,
        "model_path": model_path if model_path is not None else model_id,
        "new_elo": new_elo, "previous_elo": previous_elo, "elo_delta": elo_delta,
        "model_id": model_id, "promotion_type": promotion_type, "tier": tier,
        "supersedes": supersedes, "promoted_at": promoted_at, "iteration": iteration,
        "success": True,
    }
    return await _emit("MODEL_PROMOTED", payload, extra, source, timestamp, trace_id, router)


EXAMPLE_EMITTERS = ("emit_training_complete", "emit_selfplay_complete",
                    "emit_evaluation_complete", "emit_promotion_complete")

__all__ = sorted(set(GENERATED) | set(EXAMPLE_EMITTERS))
