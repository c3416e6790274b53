from pathlib import Path

import pytest
import yaml

from pipelines.config import load_params
from pipelines.errors import PipelineError

REPO = Path(__file__).resolve().parents[2]


def write_params(tmp_path: Path, mutate) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    mutate(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_repository_params_load():
    params = load_params(REPO / "params.yaml")
    assert params.data.target == "is_fraud"
    assert params.register_.model_name


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda p: p["train"].update(epochz=3), "train.epochz: unknown key"),
        (lambda p: p.update(trian={}), "trian: unknown key"),
        (lambda p: p["train"].update(epochs=0), "train.epochs"),
        (lambda p: p["train"].update(strategy="tpu"), "train.strategy"),
        (lambda p: p["train"].update(loss="mse"), "train.loss"),
        (lambda p: p["train"].update(reduce_lr_factor=1.5), "train.reduce_lr_factor"),
        (lambda p: p["split"].update(test_size=0.45, val_size=0.45), "split"),
        (lambda p: p["data"].pop("target"), "data.target"),
        (lambda p: p["data"].update(source="  "), "data.source"),
        (lambda p: p.pop("register"), "register"),
    ],
)
def test_bad_params_name_the_key(tmp_path, mutate, named):
    with pytest.raises(PipelineError) as error:
        load_params(write_params(tmp_path, mutate))
    assert named in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    broken = tmp_path / "params.yaml"
    broken.write_text("seed: [1,\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_params(broken)
