"""Values handed from stage to stage load typed, and a missing or stale file names itself."""

import json

import pytest

from pipelines import contracts
from pipelines.errors import PipelineError


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_a_written_contract_loads_back_equal():
    written = contracts.DecisionThreshold(threshold=0.37, method="max_f1")
    written.write()
    assert contracts.DecisionThreshold.load() == written


def test_class_weights_reach_keras_with_integer_labels():
    contracts.ClassWeights(weights={"0": 0.5, "1": 4.0}).write()
    assert contracts.ClassWeights.load().for_keras() == {0: 0.5, 1: 4.0}
    contracts.ClassWeights(weights=None).write()
    assert contracts.ClassWeights.load().for_keras() is None


def test_a_missing_contract_names_its_path_and_the_stage_that_writes_it():
    with pytest.raises(PipelineError, match=r"data/models/served.json: missing; run the quantize"):
        contracts.ServedVariant.load()


@pytest.mark.parametrize(
    "payload, culprit",
    [
        ({"threshold": -0.5, "method": "max_f1"}, "threshold"),
        ({"method": "max_f1"}, "threshold"),
        ({"threshold": 0.5, "method": "max_f1", "extra": 1}, "extra"),
    ],
)
def test_a_stale_or_edited_contract_names_the_key(payload, culprit):
    path = contracts.DecisionThreshold.PATH
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(payload))
    with pytest.raises(PipelineError, match=rf"threshold.json: {culprit}: .*rerun the evaluate"):
        contracts.DecisionThreshold.load()


def test_a_file_that_is_not_json_is_a_clear_error():
    path = contracts.ClassWeights.PATH
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(PipelineError, match="class_weights.json: file: .*rerun the rebalance"):
        contracts.ClassWeights.load()
