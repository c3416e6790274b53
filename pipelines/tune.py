"""Tune: search the model's and rebalancing's key hyperparameters on the validation split.

With ``tune.enabled: false`` (the default) the stage only writes params.yaml's values as the
``TunedConfig`` contract, instantly, so rebalance and train read one place either way and the
graph stays one graph. Enabled, Optuna (TPE sampler seeded by ``seed``, median pruner on the
per-epoch validation PR-AUC) searches the learning rate, the layer widths, dropout, the batch
size and the rebalance strategy; epochs come from early stopping. Each trial resamples the
training split itself (``pipelines.rebalancing``, train rows only), fits the model
(``pipelines.fitting``) and is scored by PR-AUC on validation: test is never read.

The first trial is always the untuned configuration. The search's best replaces it only when
it scores higher on validation; otherwise the untuned configuration is kept and the report and
log say so. Each trial is a nested MLflow run under the pipeline execution's run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from pipelines import paths
from pipelines.config import RebalanceParams, TrainParams, TuneParams, load_params
from pipelines.contracts import TunedConfig
from pipelines.fitting import fit_model
from pipelines.io import read_parquet
from pipelines.metrics import pr_auc
from pipelines.rebalancing import rebalance
from pipelines.reports import stage_headline, write_results
from pipelines.schema import Schema, load_enforced_schema
from pipelines.stage import run_stage
from pipelines.tf_runtime import tensorflow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneResult:
    config: TunedConfig
    report: dict


def sample(trial, cfg: TuneParams) -> dict:
    """One configuration from the search space (TunedConfig's fields)."""
    widths = {"x".join(map(str, units)): units for units in cfg.hidden_units}
    return {
        "rebalance_strategy": trial.suggest_categorical(
            "rebalance_strategy", cfg.rebalance_strategies
        ),
        "learning_rate": trial.suggest_float("learning_rate", *cfg.learning_rate, log=True),
        "hidden_units": widths[trial.suggest_categorical("hidden_units", list(widths))],
        "dropout": trial.suggest_float("dropout", *cfg.dropout),
        "batch_size": trial.suggest_categorical("batch_size", cfg.batch_size),
    }


def with_untuned(cfg: TuneParams, untuned: TunedConfig) -> TuneParams:
    """The search space stretched to hold the untuned configuration, which is trial 0."""

    def stretched(bounds: tuple[float, float], value: float) -> tuple[float, float]:
        return min(bounds[0], value), max(bounds[1], value)

    def joined(choices: list, value) -> list:
        return choices if value in choices else [*choices, value]

    return cfg.model_copy(
        update={
            "learning_rate": stretched(cfg.learning_rate, untuned.learning_rate),
            "dropout": stretched(cfg.dropout, untuned.dropout),
            "hidden_units": joined(cfg.hidden_units, untuned.hidden_units),
            "batch_size": joined(cfg.batch_size, untuned.batch_size),
            "rebalance_strategies": joined(cfg.rebalance_strategies, untuned.rebalance_strategy),
        }
    )


def as_trial_params(config: TunedConfig) -> dict:
    """``config`` in the sampler's encoding, to enqueue it as a trial."""
    values = config.model_dump(include=set(TunedConfig.TRAIN_FIELDS) | {"rebalance_strategy"})
    values["hidden_units"] = "x".join(map(str, config.hidden_units))
    return values


def score(
    config: TunedConfig,
    train_split: pd.DataFrame,
    val_split: pd.DataFrame,
    schema: Schema,
    train: TrainParams,
    rebalance_cfg: RebalanceParams,
    seed: int,
    callbacks: Sequence = (),
) -> float:
    """Validation PR-AUC of the model trained with ``config`` on the resampled training split."""
    resampled, report = rebalance(train_split, schema, config.rebalance_params(rebalance_cfg), seed)
    weights = report.get("class_weight")
    fitted = fit_model(
        resampled,
        schema,
        config.train_params(train),
        seed,
        val_frame=val_split,
        class_weight={int(k): v for k, v in weights.items()} if weights else None,
        callbacks=callbacks,
    )
    return pr_auc(val_split[schema.target].to_numpy(), fitted.predict(val_split))


def pruning_callback(trial):
    """Reports each epoch's validation PR-AUC to Optuna and stops a trial the pruner rejects."""
    import optuna

    _, keras = tensorflow()

    def on_epoch_end(epoch: int, logs: dict | None) -> None:
        trial.report(float((logs or {}).get("val_pr_auc", 0.0)), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch + 1}")

    return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)


def tune(
    train_split: pd.DataFrame,
    val_split: pd.DataFrame,
    schema: Schema,
    cfg: TuneParams,
    train: TrainParams,
    rebalance_cfg: RebalanceParams,
    seed: int,
    on_trial: Callable | None = None,
) -> TuneResult:
    """Search within the budget; ``on_trial(study, frozen_trial)`` is told of each finished trial."""
    untuned = TunedConfig.from_params(train, rebalance_cfg)
    if not cfg.enabled:
        return TuneResult(untuned, {"enabled": False, "source": "params", "trials": 0})
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=cfg.pruner_startup_trials, n_warmup_steps=cfg.pruner_warmup_epochs
        ),
    )
    study.enqueue_trial(as_trial_params(untuned))
    cfg = with_untuned(cfg, untuned)

    def objective(trial) -> float:
        config = TunedConfig(source="search", **sample(trial, cfg))
        value = score(
            config,
            train_split,
            val_split,
            schema,
            train,
            rebalance_cfg,
            seed,
            [pruning_callback(trial)],
        )
        log.info("trial %d: val PR-AUC %.4f %s", trial.number, value, trial.params)
        return value

    started = time.perf_counter()
    study.optimize(
        objective,
        n_trials=cfg.max_trials,
        timeout=cfg.max_minutes * 60,
        callbacks=[on_trial] if on_trial else None,
    )
    return decide(study, untuned, time.perf_counter() - started)


def decide(study, untuned: TunedConfig, seconds: float) -> TuneResult:
    """The best trial's configuration if it beats the untuned one (trial 0), else the untuned."""
    import optuna

    finished = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    baseline = next(t.value for t in finished if t.number == 0)
    best = max(finished, key=lambda t: (t.value, -t.number))
    improved = best.number != 0 and best.value > baseline
    chosen = untuned
    if improved:
        params = dict(best.params)
        params["hidden_units"] = [int(u) for u in params["hidden_units"].split("x")]
        chosen = TunedConfig(source="search", **params)
    report = {
        "enabled": True,
        "source": chosen.source,
        "kept_untuned": not improved,
        "untuned_val_pr_auc": baseline,
        "best_val_pr_auc": best.value if improved else baseline,
        "best_trial": best.number if improved else 0,
        "trials": len(study.trials),
        "trials_pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
        "seconds": round(seconds, 3),
        "chosen": chosen.model_dump(mode="json"),
        "history": [
            {"trial": t.number, "state": t.state.name, "val_pr_auc": t.value, **t.params}
            for t in study.trials
        ],
    }
    if improved:
        log.info("tuned: val PR-AUC %.4f beats the untuned %.4f", best.value, baseline)
    else:
        log.warning(
            "tune: no trial beat the untuned configuration's val PR-AUC %.4f; keeping it",
            baseline,
        )
    return TuneResult(chosen, report)


class TrialLogger:
    """An Optuna callback logging each trial as a nested run of this execution's MLflow run."""

    def __init__(self, experiment_name: str):
        from pipelines import tracking

        self.client = tracking.client()
        self.experiment = tracking.experiment_id(self.client, experiment_name)
        self.parent = tracking.open_lineage_run(self.client, self.experiment, run_name="retrain")

    def __call__(self, study, trial) -> None:
        run = self.client.create_run(
            self.experiment,
            run_name=f"tune-trial-{trial.number}",
            tags={"mlflow.parentRunId": self.parent, "pipeline.stage": "tune"},
        )
        run_id = run.info.run_id
        for key, value in trial.params.items():
            self.client.log_param(run_id, key, value)
        self.client.set_tag(run_id, "optuna.state", trial.state.name)
        if trial.value is not None:
            self.client.log_metric(run_id, "val_pr_auc", trial.value)
        for epoch, value in trial.intermediate_values.items():
            self.client.log_metric(run_id, "epoch_val_pr_auc", value, step=epoch)
        self.client.set_terminated(run_id, status="FINISHED")

    def hand_over(self) -> None:
        """Leave the execution's run for the next stages: not RUNNING under this process,
        which exits now (the next stage to open it would otherwise reap it as killed), and
        not FINISHED (register finishes it, and a finished run is not continued)."""
        self.client.update_run(self.parent, status="SCHEDULED")


def main() -> None:
    params = load_params()
    on_trial = TrialLogger(params.register_.experiment_name) if params.tune.enabled else None
    result = tune(
        read_parquet(paths.SPLIT_TRAIN),
        read_parquet(paths.SPLIT_VAL),
        load_enforced_schema(),
        params.tune,
        params.train,
        params.rebalance,
        params.seed,
        on_trial,
    )
    if on_trial is not None:
        on_trial.hand_over()
    result.config.write()
    # Off, tuning chose nothing and measured nothing: its metrics file is empty.
    metrics = stage_headline("tune", val_pr_auc=result.report.get("best_val_pr_auc"))
    write_results(result.report, paths.TUNE_REPORT, metrics, paths.TUNE_METRICS)


if __name__ == "__main__":
    run_stage("tune", main)
