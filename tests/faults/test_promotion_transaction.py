"""Promotion as one recoverable transaction, the audit record, and the registry lock, on one
embedded sqlite store (no pipeline run, no TensorFlow). Each test uses its own model name."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from pipelines import audit, faults, promotion, registry_lock, stage, tracking
from pipelines.errors import PipelineError


class Crash(BaseException):
    """Stands in for a SIGKILL at a fault point: nothing after it runs."""


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield tracking.client()
    if saved is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = saved
    import mlflow

    mlflow.set_tracking_uri(None)


def _model(client, name: str, versions: int) -> None:
    client.create_registered_model(name)
    experiment = tracking.experiment_id(client, "unit")
    for _ in range(versions):
        run = client.create_run(experiment).info.run_id
        client.create_model_version(
            name, f"runs:/{run}/model", run_id=run, tags={"model_fingerprint": "f"}
        )


def _move(client, name: str, version: str, alias: str = "champion") -> dict | None:
    return promotion.move_alias(
        client,
        name,
        alias,
        version,
        action="promote",
        reason=f"test v{version}",
        run_id="r",
        git_commit="c",
        decision=alias,
    )


def _crash_at(monkeypatch, where: str) -> None:
    def point(name: str) -> None:
        if name == where:
            raise Crash(name)

    monkeypatch.setattr(faults, "point", point)


def test_every_move_is_recorded_once_and_a_no_move_not_at_all(client):
    _model(client, "once", 2)
    _move(client, "once", "1")
    _move(client, "once", "2")
    assert _move(client, "once", "2") is None
    moves = [(e["from_version"], e["to_version"]) for e in promotion.history(client, "once")]
    assert moves == [(None, "1"), ("1", "2")]
    event = promotion.history(client, "once")[1]
    assert event["user_source"] == "os-user-unverified" and event["decision"] == "champion"
    # The audit is not in the model's tags, where a tag edit could rewrite it.
    client.set_registered_model_tag("once", "audit.00001", json.dumps({"forged": True}))
    assert len([e for e in promotion.history(client, "once") if "forged" not in e]) == 2


@pytest.mark.parametrize(
    ("where", "champion", "moves"),
    [
        ("after_intent", "1", [(None, "1")]),  # the alias never moved: abandoned
        ("after_alias", "2", [(None, "1"), ("1", "2")]),  # it moved: completed once
        ("after_audit", "2", [(None, "1"), ("1", "2")]),  # done already: nothing to settle
    ],
)
def test_a_move_killed_midway_is_settled_by_the_next_start(
    client, monkeypatch, where, champion, moves
):
    name = f"crash-{where}"
    _model(client, name, 2)
    _move(client, name, "1")
    _crash_at(monkeypatch, where)
    with pytest.raises(Crash):
        _move(client, name, "2")
    monkeypatch.undo()
    promotion.settle_intents(client, name)
    assert audit.pending(client, name) == []
    assert promotion.alias_holder(client, name, "champion") == champion
    assert [(e["from_version"], e["to_version"]) for e in promotion.history(client, name)] == moves
    tags = client.get_model_version(name, "2").tags
    assert (tags.get("gate_decision") == "champion") == (champion == "2")
    # A retry of the same move after settling records nothing twice.
    _move(client, name, "2")
    assert len(promotion.history(client, name)) == 2


def test_rollback_to_the_version_already_champion_is_refused(client):
    _model(client, "legacy", 1)
    # An old tag-based trail with the v1 -> v1 event the crash used to record.
    for index, source in ((1, None), (2, "1")):
        event = {"action": "promote", "alias": "champion", "from_version": source}
        event |= {"to_version": "1", "reason": "old", "time": "t"}
        client.set_registered_model_tag("legacy", f"audit.{index:05d}", json.dumps(event))
    client.set_registered_model_alias("legacy", "champion", "1")
    with pytest.raises(PipelineError, match="v1 is already @champion"):
        promotion.rollback(client, "legacy", "c")


def test_the_registry_lock_excludes_a_second_holder_and_reaps_a_dead_ones(client):
    with registry_lock.held(client, "locked", wait_s=5, stale_s=600):
        with pytest.raises(PipelineError, match=r"held by pid \d+ on .*gave up after 0 s"):
            with registry_lock.held(client, "locked", wait_s=0, stale_s=600):
                pass
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    client.create_registered_model(
        "locked.lock",
        tags={"lock.host": socket.gethostname(), "lock.pid": dead, "lock.token": "t"}
        | {"lock.taken": "9999999999"},
    )
    with registry_lock.held(client, "locked", wait_s=5, stale_s=600):
        holder = client.get_registered_model("locked.lock").tags
        assert holder["lock.pid"] == str(os.getpid())


def test_a_swallowed_sigterm_still_fails_the_stage_and_stops_the_commit(monkeypatch):
    def swallowed() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt:
            pass  # what a library catching too much would do
        stage.raise_if_terminated()

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setitem(stage._signals, "terminated", False)
    try:
        with pytest.raises(SystemExit) as exited:
            stage.run_stage("registry", swallowed, record_failure=False)
        assert exited.value.code == 1
        with pytest.raises(KeyboardInterrupt):
            with stage.deferred_termination():
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
