"""Register and rollback SIGKILLed at every step of a registration, on the embedded store.

One chain on one registry; each step kills a process at a named point and runs it again:

1. before the version (inverted model): the retry registers it once, as the first champion;
2. after the version (noisy): register's DVC outputs are gone, so ``dvc repro`` would rerun
   it; the retry gates that version (no duplicate) and promotes it;
3. after the alias moved (original): the retry completes the move, recorded once (never
   ``v3 -> v3``), and finds the version gated;
4. after the audit (noisy, another seed): nothing to settle but the dead run, and the
   retry finds the version gated, to @challenger;
5. a SIGTERM whose interrupt is swallowed (a third noisy seed): exit 1, nothing moves;
6. rollback killed after its alias move: ``history`` settles it, once;
7. ``dvc repro -f -s register`` run twice on the workspace ``dvc.lock`` records: the second
   run, with nothing changed, registers no version and moves nothing.

A kill after the intent and before the alias (the move is abandoned, then redone by the
retry) is tested in process, with the other points, by ``tests/faults/test_promotion_transaction``.

After each step: no RUNNING run and no PENDING logged model anywhere, no two versions of one lineage, every alias change
in history exactly once, and the champion what history says.
"""

from __future__ import annotations

import shutil
import signal

import pytest

from pipelines import promotion
from pipelines.paths import KERAS_MODEL, REGISTER_REPORT
from tests.faults.faulty import (
    GATE,
    MODEL,
    pending_models,
    running_runs,
    use_model,
    widen_test_split,
)
from tests.integration.conftest import copy_with_outputs

pytestmark = pytest.mark.integration


class Chain:
    def __init__(self, repo):
        self.repo = repo
        self.original = repo.root / "original.keras"
        shutil.copy2(repo.root / KERAS_MODEL, self.original)

    def register(self, fault: str | None = None):
        extra = {"PIPELINE_FAULT_AT": fault} if fault else {}
        return self.repo.python("-m", "pipelines.register", env_extra=extra, timeout=600)

    def registry(self, *args: str, fault: str | None = None):
        extra = {"PIPELINE_FAULT_AT": fault} if fault else {}
        return self.repo.python("-m", "pipelines.registry", *args, env_extra=extra, timeout=300)

    def killed_then_retried(self, fault: str, change: str, seed: int = 0):
        use_model(self.repo, self.original, change, seed)
        killed = self.register(fault)
        assert killed.returncode == -signal.SIGKILL, killed.output[-3000:]
        assert not (self.repo.root / REGISTER_REPORT).exists(), "dvc would call it up to date"
        retried = self.register()
        assert retried.returncode == 0, retried.output[-3000:]
        return retried

    def moves(self) -> list[tuple[str, str, str | None, str]]:
        return [
            (e["action"], e["alias"], e["from_version"], e["to_version"])
            for e in promotion.history(self.repo.mlflow_client(), MODEL)
        ]

    def assert_consistent(self) -> None:
        client = self.repo.mlflow_client()
        assert running_runs(client) == []
        assert pending_models(client) == []
        versions = client.search_model_versions(f"name='{MODEL}'")
        lineages = [v.tags["lineage_key"] for v in versions]
        assert len(lineages) == len(set(lineages)), "a lineage registered twice"
        assert len({v.tags["run_id"] for v in versions}) == len(versions)
        assert all("gate_decision" in v.tags for v in versions), "a version was never gated"
        moves = self.moves()
        assert all(source != to for _, _, source, to in moves), moves
        champion = promotion.alias_holder(client, MODEL, "champion")
        assert champion == promotion.champion_lineage(promotion.history(client, MODEL))[-1]


@pytest.fixture(scope="module")
def chain(pipeline_repo, tmp_path_factory):
    repo = copy_with_outputs(pipeline_repo[0], tmp_path_factory.mktemp("faults"), registry=False)
    widen_test_split(repo)
    repo.set_params(GATE)
    return Chain(repo)


def test_killed_before_the_version(chain):
    chain.killed_then_retried("before_version", "inverted")
    assert chain.moves() == [("promote", "champion", None, "1")]
    run = chain.repo.mlflow_client().get_model_version(MODEL, "1").tags["run_id"]
    assert "pipeline.reaped" in chain.repo.mlflow_client().get_run(run).data.tags
    chain.assert_consistent()


def test_killed_after_the_version(chain):
    retried = chain.killed_then_retried("after_version", "noisy")
    assert "registered already" in retried.stderr
    assert chain.moves()[-1] == ("promote", "champion", "1", "2")
    chain.assert_consistent()


def test_killed_after_the_alias_moved(chain):
    retried = chain.killed_then_retried("after_alias", "original")
    assert "completing the interrupted move @champion v2 -> v3" in retried.stderr
    assert "gated already" in retried.stderr
    assert chain.moves()[-1] == ("promote", "champion", "2", "3")
    chain.assert_consistent()


def test_killed_after_the_audit(chain):
    chain.killed_then_retried("after_audit", "noisy", seed=2)
    assert chain.moves()[-1] == ("challenge", "challenger", None, "4")
    assert len(chain.moves()) == 4
    chain.assert_consistent()


def test_a_swallowed_sigterm_exits_non_zero_and_moves_nothing(chain):
    use_model(chain.repo, chain.original, "noisy", seed=3)
    terminated = chain.register("after_version:term-swallowed")
    assert terminated.returncode == 1, terminated.output[-3000:]
    assert "interrupted" in terminated.last_error_line()
    assert len(chain.moves()) == 4
    retried = chain.register()
    assert retried.returncode == 0, retried.output[-3000:]
    assert chain.moves()[-1] == ("challenge", "challenger", "4", "5")
    chain.assert_consistent()


def test_a_rollback_killed_after_its_alias_moved(chain):
    killed = chain.registry("rollback", fault="after_alias")
    assert killed.returncode == -signal.SIGKILL, killed.output[-3000:]
    history = chain.registry("history")
    assert history.returncode == 0, history.output[-3000:]
    assert "completing the interrupted move @champion v3 -> v2" in history.stderr
    assert chain.moves()[-1] == ("rollback", "champion", "3", "2")
    chain.assert_consistent()
    client = chain.repo.mlflow_client()
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{chain.repo.root / 'mlflow' / 'mlflow.db'}")
    try:
        champion = promotion.alias_holder(client, MODEL, "champion")
        promotion.check_serves(client, MODEL, champion)
    finally:
        mlflow.set_tracking_uri(None)
    rollbacks = client.search_runs(
        [client.get_experiment_by_name("retraining").experiment_id],
        "attributes.run_name = 'rollback-tabular-classifier'",
    )
    assert [r.info.status for r in rollbacks] == ["FAILED"]
    assert "pipeline.reaped" in rollbacks[0].data.tags


def test_a_forced_rerun_with_nothing_changed_registers_nothing_and_moves_nothing(chain):
    # The chain swapped models in the workspace by hand; under DVC every stage checks its
    # inputs against dvc.lock, so put back what the lock records and register that once.
    restored = chain.repo.dvc("checkout", "-f", timeout=300)
    assert restored.returncode == 0, restored.output[-3000:]
    first = chain.repo.dvc("repro", "-f", "-s", "register", timeout=600)
    assert first.returncode == 0, first.output[-3000:]
    before = (len(chain.repo.registered_versions(MODEL)), chain.moves())
    rerun = chain.repo.dvc("repro", "-f", "-s", "register", timeout=600)
    assert rerun.returncode == 0, rerun.output[-3000:]
    assert "gated already" in rerun.output and "nothing registered" in rerun.output
    assert (len(chain.repo.registered_versions(MODEL)), chain.moves()) == before
    chain.assert_consistent()
