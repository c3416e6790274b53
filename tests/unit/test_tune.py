"""The tune stage: off, it repeats params.yaml; on, a tiny budget searches and keeps the
untuned configuration unless a trial beats it on validation."""

import json
from types import SimpleNamespace

import pytest

from pipelines.config import RebalanceParams, TuneParams
from pipelines.contracts import TunedConfig
from pipelines.summary import tune_lines
from pipelines.tune import tune

REBALANCE = RebalanceParams(
    strategy="class_weight", sampling_ratio=0.5, k_neighbors=3, small_minority="reduce_k"
)


def tune_params(**changes) -> TuneParams:
    values = dict(
        enabled=True,
        max_trials=2,
        max_minutes=5,
        learning_rate=(0.001, 0.01),
        hidden_units=[[4], [8]],
        dropout=(0.0, 0.2),
        batch_size=[32, 64],
        rebalance_strategies=["none", "class_weight", "smote"],
        pruner_startup_trials=1,
        pruner_warmup_epochs=0,
    )
    return TuneParams(**(values | changes))


@pytest.fixture
def splits(frame):
    return frame.iloc[:280], frame.iloc[280:]


def test_disabled_hands_on_params_values_without_training(splits, schema, train_params):
    train = train_params(hidden_units=[16, 8])
    result = tune(*splits, schema, tune_params(enabled=False), train, REBALANCE, seed=0)
    assert result.config == TunedConfig.from_params(train, REBALANCE)
    assert result.config.train_params(train) == train
    assert result.config.rebalance_params(REBALANCE) == REBALANCE
    assert result.report == {"enabled": False, "source": "params", "trials": 0}


def test_search_within_budget_keeps_or_beats_the_untuned_configuration(
    splits, schema, train_params
):
    # The untuned configuration lies outside the search space: trial 0 is it all the same.
    train = train_params(epochs=1, batch_size=16, hidden_units=[3], learning_rate=0.02)
    logged = []
    result = tune(
        *splits,
        schema,
        tune_params(),
        train,
        REBALANCE,
        seed=0,
        on_trial=lambda study, trial: logged.append(trial.number),
    )
    report = result.report
    assert report["trials"] == 2 and logged == [0, 1]
    assert report["history"][0]["rebalance_strategy"] == "class_weight"  # trial 0: untuned
    assert report["best_val_pr_auc"] >= report["untuned_val_pr_auc"]
    if report["kept_untuned"]:
        assert result.config == TunedConfig.from_params(train, REBALANCE)
    else:
        assert report["best_val_pr_auc"] > report["untuned_val_pr_auc"]
        assert result.config.source == "search"
        assert result.config.rebalance_strategy in {"none", "class_weight", "smote"}
    json.dumps(report)  # the report is written as JSON
    (line,) = tune_lines(report)
    assert line.startswith("  tuning             2 trials: ")
    assert ("kept the untuned" in line) == report["kept_untuned"]


class FakeClient:
    """The MlflowClient calls TrialLogger makes, recorded."""

    def __init__(self):
        self.runs: dict[str, dict] = {}
        self.status: dict[str, str] = {}

    def create_run(self, experiment, run_name, tags):
        run_id = f"run{len(self.runs)}"
        self.runs[run_id] = {"name": run_name, "tags": dict(tags), "metrics": {}, "params": {}}
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id))

    def log_param(self, run_id, key, value):
        self.runs[run_id]["params"][key] = value

    def set_tag(self, run_id, key, value):
        self.runs[run_id]["tags"][key] = value

    def log_metric(self, run_id, key, value, step=0):
        self.runs[run_id]["metrics"][key] = value

    def set_terminated(self, run_id, status):
        self.status[run_id] = status

    def update_run(self, run_id, status):
        self.status[run_id] = status


def test_each_trial_is_a_nested_run_and_the_execution_run_is_handed_over(monkeypatch):
    """Trials are children of the execution's run; the run is left SCHEDULED, not RUNNING
    under a process that exits (the next stage would reap it as killed; checked against a
    real sqlite store when written: register's open_lineage_run continues it)."""
    import optuna

    from pipelines import tracking
    from pipelines.tune import TrialLogger

    fake = FakeClient()
    monkeypatch.setattr(tracking, "client", lambda: fake)
    monkeypatch.setattr(tracking, "experiment_id", lambda client, name: "1")
    monkeypatch.setattr(tracking, "open_lineage_run", lambda client, exp, run_name: "parent")
    logger = TrialLogger("retraining")
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("lr", 0, 1), n_trials=2, callbacks=[logger])
    logger.hand_over()
    assert [run["name"] for run in fake.runs.values()] == ["tune-trial-0", "tune-trial-1"]
    assert all(run["tags"]["mlflow.parentRunId"] == "parent" for run in fake.runs.values())
    assert all(
        "val_pr_auc" in run["metrics"] and "lr" in run["params"] for run in fake.runs.values()
    )
    assert fake.status == {"run0": "FINISHED", "run1": "FINISHED", "parent": "SCHEDULED"}
