"""Helpers of the fault tests: models of known quality, and the registry's invariants."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.paths import (
    KERAS_MODEL,
    SERVED_VARIANT,
    SPLIT_TEST,
    SPLIT_TRAIN,
    SPLIT_VAL,
    TFLITE_MODEL,
)
from tests.integration.conftest import RepoCopy

MODEL = "tabular-classifier"
# Only the PR-AUC gain decides (strictly positive, so a tie never promotes): which model
# replaces which is then known from how each is made.
GATE = {
    "register": {
        "max_recall_drop": 1.0,
        "max_ece_increase": 1.0,
        "min_recall": 0.0,
        "min_pr_auc": 0.0,
        "require_improvement": False,
        "non_inferiority_margin": 1.0,
        "lock_wait_s": 120,
    }
}


def widen_test_split(repo: RepoCopy) -> None:
    """All labelled rows as the test split (about 80 positives instead of 16), so that the
    original model measurably beats a noisy one, which beats an inverted one."""
    parts = [pd.read_parquet(repo.root / part) for part in (SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST)]
    pd.concat(parts, ignore_index=True).to_parquet(repo.root / SPLIT_TEST, index=False)


def use_model(repo: RepoCopy, original: Path, change: str, seed: int = 0) -> None:
    """The trained model, or a copy made worse in a known way, as register's model, with its
    dynamic-range TFLite conversion as the variant quantize served (what the version serves)."""
    from pipelines.tf_runtime import load_keras_model, tensorflow
    from pipelines.tflite import convert

    _, keras = tensorflow()
    model = load_keras_model(original)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    rng = np.random.default_rng(seed)
    if change == "noisy":
        kernel, bias = dense[0].get_weights()
        dense[0].set_weights([kernel * rng.normal(1, 1.5, kernel.shape), bias])
    elif change == "inverted":
        kernel, bias = dense[-1].get_weights()
        dense[-1].set_weights([-kernel, -bias + rng.normal(0, 0.01, bias.shape)])
    model.save(repo.root / KERAS_MODEL)
    (repo.root / TFLITE_MODEL).write_bytes(convert(model, "dynamic_range"))
    served = {"serving_artifact": "dynamic_range", "tflite_file_variant": "dynamic_range"}
    (repo.root / SERVED_VARIANT).write_text(json.dumps(served))


def running_runs(client) -> list[str]:
    """Runs left RUNNING in any experiment (pipeline, rollback or audit)."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, "attributes.status = 'RUNNING'")
    return [f"{r.info.run_name} ({r.info.run_id})" for r in runs]


def pending_models(client) -> list[str]:
    """Logged models left PENDING (a process killed inside ``log_model``, never reaped)."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    models = client.search_logged_models(experiments)
    return [m.model_id for m in models if str(m.status) == "PENDING"]
