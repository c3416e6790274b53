"""Leakage is impossible by construction: resampling and augmentation only ever read train."""

from pathlib import Path

import pytest
import yaml

from pipelines import augment, paths, rebalance
from pipelines.cleaning import clean_rows
from pipelines.config import load_params
from pipelines.contracts import ClassWeights
from pipelines.schema import save_schema, schema_path

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


@pytest.mark.parametrize("strategy, weighted", [("class_weight", True), ("smote", False)])
def test_rebalance_always_hands_training_the_class_weights_contract(project, strategy, weighted):
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["rebalance"]["strategy"] = strategy
    Path("params.yaml").write_text(yaml.safe_dump(params))
    rebalance.main()
    weights = ClassWeights.load().for_keras()
    assert (weights is not None) == weighted
    if weighted:
        assert set(weights) == {0, 1} and weights[1] > weights[0]
