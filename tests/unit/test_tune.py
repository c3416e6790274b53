"""The tune stage: off, it repeats params.yaml; on, a tiny budget searches and keeps the
untuned configuration unless a trial beats it on validation."""

import json

import pytest

from pipelines.config import RebalanceParams, TuneParams
from pipelines.contracts import TunedConfig
from pipelines.tune import tune

REBALANCE = RebalanceParams(
    strategy="class_weight", sampling_ratio=0.5, k_neighbors=3, small_minority="reduce_k"
)


def tune_params(**changes) -> TuneParams:
    values = dict(
        enabled=True,
        max_trials=3,
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
    train = train_params(epochs=2)
    logged = []
    result = tune(
        *splits, schema, tune_params(), train, REBALANCE, seed=0,
        on_trial=lambda study, trial: logged.append(trial.number),
    )  # fmt: skip
    report = result.report
    assert report["trials"] == 3 and logged == [0, 1, 2]
    assert report["history"][0]["rebalance_strategy"] == "class_weight"  # trial 0: untuned
    assert report["best_val_pr_auc"] >= report["untuned_val_pr_auc"]
    if report["kept_untuned"]:
        assert result.config == TunedConfig.from_params(train, REBALANCE)
    else:
        assert report["best_val_pr_auc"] > report["untuned_val_pr_auc"]
        assert result.config.source == "search"
        assert result.config.rebalance_strategy in {"none", "class_weight", "smote"}
    json.dumps(report)  # the report is written as JSON
