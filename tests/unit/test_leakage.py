"""Leakage is impossible by construction: resampling and augmentation only ever read train,
training (early stopping, the LR schedule) reads train and validation, and quantize chooses its
served variant on validation. The threshold's test is in test_evaluate_register.py."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines import augment, paths, quantize, rebalance, tune
from pipelines import train as train_stage
from pipelines.cleaning import clean_rows
from pipelines.config import QuantizeParams, load_params
from pipelines.contracts import ClassWeights
from pipelines.datasets import schema_path
from pipelines.schema import save_schema

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path, monkeypatch, frame, schema, validate_params):
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"] = {"source": "data/landing", "target": "label", "positive_label": 1}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    save_schema(schema, schema_path(load_params().data))
    save_schema(schema, paths.ENFORCED_SCHEMA)
    clean = clean_rows(frame, schema, validate_params).clean
    for path in (paths.SPLIT_TRAIN, paths.SPLIT_VAL, paths.SPLIT_TEST):
        path.parent.mkdir(parents=True, exist_ok=True)
        clean.to_parquet(path)
    tune.main()  # tune.enabled is false: the TunedConfig contract repeats params.yaml
    return tmp_path


def record_reads(monkeypatch, module) -> list[Path]:
    reads = []
    original = module.read_parquet

    def recording(path):
        reads.append(Path(path))
        return original(path)

    monkeypatch.setattr(module, "read_parquet", recording)
    return reads


def test_rebalance_and_augment_read_only_the_training_split(project, monkeypatch):
    rebalance_reads = record_reads(monkeypatch, rebalance)
    rebalance.main()
    augment_reads = record_reads(monkeypatch, augment)
    augment.main()
    assert rebalance_reads == [paths.SPLIT_TRAIN]
    assert augment_reads == [paths.REBALANCED_TRAIN]


def test_dvc_graph_gives_them_no_validation_or_test_input():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    forbidden = {str(paths.SPLIT_VAL), str(paths.SPLIT_TEST)}
    for name in ("rebalance", "augment"):
        assert not forbidden & set(stages[name]["deps"])
    assert str(paths.SPLIT_TEST) not in stages["train"]["deps"]
    assert str(paths.SPLIT_TEST) not in stages["tune"]["deps"]


def test_tune_reads_only_train_and_validation(project, monkeypatch):
    """Tuning chooses on validation: the test split is never even read."""
    reads = record_reads(monkeypatch, tune)
    tune.main()
    assert reads == [paths.SPLIT_TRAIN, paths.SPLIT_VAL]


def test_flipped_validation_and_test_labels_leave_rebalance_and_augment_unchanged(project):
    """Whatever rebalance and augment choose (k, the sample, the class weights) comes from the
    training split alone: flipping every validation and test label changes none of it."""

    def run() -> list:
        rebalance.main()
        augment.main()
        frames = [pd.read_parquet(path) for path in (paths.REBALANCED_TRAIN, paths.AUGMENTED_TRAIN)]
        return frames + [ClassWeights.load().for_keras()]

    before = run()
    for path in (paths.SPLIT_VAL, paths.SPLIT_TEST):
        rows = pd.read_parquet(path)
        rows.assign(label=1 - rows["label"]).to_parquet(path)
    after = run()
    pd.testing.assert_frame_equal(after[0], before[0])
    pd.testing.assert_frame_equal(after[1], before[1])
    assert after[2] == before[2]


class Stopped(Exception):
    """Raised by the stand-in for train(): main() has read all it hands to training."""


def test_training_reads_only_train_and_validation(project, monkeypatch):
    """Early stopping and the LR schedule watch what train() is given: the augmented training
    split and validation, never test."""
    rebalance.main()  # the class-weights contract train reads
    augment.main()
    given = []

    def stand_in(train_frame, val_frame, *args, **kwargs):
        given.extend([train_frame, val_frame])
        raise Stopped

    monkeypatch.setattr(train_stage, "train", stand_in)
    reads = record_reads(monkeypatch, train_stage)
    with pytest.raises(Stopped):
        train_stage.main()
    assert reads == [paths.AUGMENTED_TRAIN, paths.SPLIT_VAL] and len(given) == 2


QUANTIZE = QuantizeParams(
    variants=["dynamic_range", "float16", "int8"],
    max_pr_auc_drop=0.01,
    max_recall_drop=0.02,
    parity_tolerance=0.05,
    max_latency_ratio=1.05,
    serving_policy="smallest",
    representative_rows=50,
    qat_epochs=1,
    qat_learning_rate=0.001,
)
# Each stand-in variant: its file size and how far its scores stray from the float model's.
NOISE = {"float32": (4000, 0.0), "dynamic_range": (1500, 0.002), "float16": (2000, 0.0001)}
NOISE["int8"] = (1000, 0.2)  # smallest, but fails parity: the gate must say so every time


def split_rows(rng, n: int) -> quantize.Rows:
    features = rng.normal(size=(n, 3)).astype("float32")
    labels = (features[:, 0] + rng.normal(0, 0.7, n) > 1.2).astype(int)
    return quantize.Rows(features, labels)


@pytest.fixture
def no_tensorflow(monkeypatch):
    """quantize() with TensorFlow and LiteRT replaced by arithmetic, so it runs in milliseconds."""

    def float_scores(features):
        return 1 / (1 + np.exp(-2 * features[:, 0]))

    class Scorer:
        def __init__(self, tflite: bytes):
            self.noise = NOISE[tflite.decode().split(":")[0]][1]

        def predict(self, features):
            return np.clip(float_scores(features) + self.noise * np.sin(7 * features[:, 1]), 0, 1)

        __call__ = predict

    def convert(model, variant, sample=None):
        return f"{variant}:".encode().ljust(NOISE[variant][0], b"x")

    fakes = {
        "predict_proba": lambda model, features: float_scores(features),
        "convert": convert,
        "TFLiteScorer": Scorer,
        "measure_speed": lambda call, features: {"latency_batch1_ms": 1.0},
        "latency_ratio": lambda scorer, reference, features: 1.0,
        "interpreter_class": lambda: (Scorer, "stand-in"),
    }
    for name, fake in fakes.items():
        monkeypatch.setattr(quantize, name, fake)


@pytest.mark.parametrize("change", ["flipped", "permuted"])
def test_quantize_choice_never_looks_at_test_labels(no_tensorflow, change):
    rng = np.random.default_rng(0)
    train, val, test = split_rows(rng, 300), split_rows(rng, 400), split_rows(rng, 400)
    labels = 1 - test.labels if change == "flipped" else rng.permutation(test.labels)
    other_test = quantize.Rows(test.features, labels)
    report, _ = quantize.quantize(None, train, val, test, 0.5, QUANTIZE, seed=0)
    other, _ = quantize.quantize(None, train, val, other_test, 0.5, QUANTIZE, seed=0)

    def chosen_on(result: dict) -> dict:
        """Everything but the reported-only test numbers and the build time."""
        return {
            name: {k: v for k, v in entry.items() if k not in ("test", "build_seconds")}
            for name, entry in result["variants"].items()
        }

    assert other["serving_artifact"] == report["serving_artifact"] == "dynamic_range"
    assert chosen_on(other) == chosen_on(report)
    assert other["variants"]["int8"]["gate"] == report["variants"]["int8"]["gate"]
    assert "int8: max |diff|" in report["variants"]["int8"]["gate"]
    # The test labels did change what is reported: they reach the report, and only it.
    assert other["variants"]["float16"]["test"] != report["variants"]["float16"]["test"]
    assert other["float"]["test"]["pr_auc"] != report["float"]["test"]["pr_auc"]


@pytest.mark.parametrize("strategy, weighted", [("class_weight", True), ("smote", False)])
def test_rebalance_always_hands_training_the_class_weights_contract(project, strategy, weighted):
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["rebalance"]["strategy"] = strategy
    Path("params.yaml").write_text(yaml.safe_dump(params))
    tune.main()
    rebalance.main()
    weights = ClassWeights.load().for_keras()
    assert (weights is not None) == weighted
    if weighted:
        assert set(weights) == {0, 1} and weights[1] > weights[0]


def test_small_data_cross_validation_never_sees_a_test_row(project, monkeypatch, frame, schema):
    """evaluate's CV estimate folds train + validation only."""
    from pipelines import analyses, crossval

    pools = []
    monkeypatch.setattr(crossval, "cross_validate", lambda pool, *args: pools.append(pool) or {})
    monkeypatch.setattr(analyses.intervals, "cv_estimate", lambda cv: "")
    params = load_params()
    evaluate = params.evaluate.model_copy(update={"cv": "on", "shap_rows": 0})
    splits = {"train": frame.iloc[:200], "val": frame.iloc[200:300], "test": frame.iloc[300:]}
    report = {"threshold": 0.5}
    analyses.analyses(
        report, {}, splits, None, schema, params.model_copy(update={"evaluate": evaluate})
    )
    (pool,) = pools
    assert set(pool["row_id"]) == set(frame["row_id"].iloc[:300])
