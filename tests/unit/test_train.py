"""Train's pure decisions: TF_CONFIG checks, the steps-per-execution guard, dtype policy,
caching and which backup a restart may resume from. No TensorFlow is imported here."""

import json

import numpy as np
import pytest

from pipelines.batches import fits_in_cache, steps_per_epoch
from pipelines.distribution import parse_tf_config, safe_steps_per_execution
from pipelines.errors import PipelineError
from pipelines.model import dtype_policy, embedding_dim
from pipelines.train import claim_backup, fingerprint

CLUSTER = {"worker": ["127.0.0.1:1111", "127.0.0.1:2222"]}


def tf_config(cluster=CLUSTER, task_type="worker", index=0) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (tf_config(), ("worker", 0, 2)),
        (tf_config(index=1), ("worker", 1, 2)),
        (
            tf_config(cluster={"chief": ["h:1"], "worker": ["h:2"]}, task_type="chief"),
            ("chief", 0, 2),
        ),
    ],
)
def test_valid_tf_config(raw, expected):
    assert parse_tf_config(raw) == expected


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (None, "needs TF_CONFIG to be set"),
        ("  ", "needs TF_CONFIG to be set"),
        ("{not json", "TF_CONFIG is not valid"),
        (json.dumps({"cluster": CLUSTER}), "TF_CONFIG is not valid (KeyError: 'task')"),
        (
            json.dumps({"cluster": [], "task": {"type": "worker", "index": 0}}),
            "TF_CONFIG is not valid",
        ),
        (tf_config(index=2), "task index 2 is outside cluster.worker"),
        (tf_config(index=-1), "task index -1 is outside cluster.worker"),
        (tf_config(index="0"), "integer index"),
        (tf_config(cluster=CLUSTER | {"ps": ["h:3"]}, task_type="ps"), "chief or worker"),
        (tf_config(task_type="chief"), "TF_CONFIG is not valid (KeyError: 'chief')"),
    ],
)
def test_missing_or_invalid_tf_config_names_it(raw, named):
    with pytest.raises(PipelineError, match="TF_CONFIG") as error:
        parse_tf_config(raw)
    assert named in str(error.value)


@pytest.mark.parametrize(
    ("requested", "replicas", "used"),
    [
        # Two replicas: Keras 3 crashes under MirroredStrategy on logical CPUs, and tf-keras
        # under MultiWorkerMirroredStrategy (sparse all-gather shape mismatch): forced to 1.
        (4, 2, 1),
        (4, 1, 4),  # one replica (default strategy, or mirrored on one device): as requested
        (1, 2, 1),
    ],
)
def test_steps_per_execution_guard(requested, replicas, used):
    assert safe_steps_per_execution(requested, replicas) == used


@pytest.mark.parametrize(
    ("setting", "gpus", "policy"),
    [("auto", 0, "float32"), ("auto", 1, "mixed_float16"), ("off", 2, "float32")],
)
def test_mixed_precision_only_on_gpu(setting, gpus, policy):
    assert dtype_policy(setting, gpus) == policy


def test_cache_budget():
    assert fits_in_cache(2**20, 1)
    assert not fits_in_cache(2**20 + 1, 1)
    assert not fits_in_cache(1, 0)  # 0 never caches


@pytest.mark.parametrize(("rows", "batch", "steps"), [(10, 4, 3), (8, 4, 2), (1, 64, 1)])
def test_an_epoch_is_every_batch_the_last_one_partial(rows, batch, steps):
    assert steps_per_epoch(rows, batch) == steps


def test_fingerprint_changes_with_params_seed_weights_and_data(train_params):
    cfg = train_params
    x, y = np.zeros((4, 2), "float32"), np.zeros(4)
    base = fingerprint(cfg(), 1, None, x, y)
    assert base == fingerprint(cfg(), 1, None, x.copy(), y.copy())
    assert base != fingerprint(cfg(learning_rate=0.01), 1, None, x, y)
    assert base != fingerprint(cfg(), 2, None, x, y)
    assert base != fingerprint(cfg(), 1, {"0": 1.0, "1": 5.0}, x, y)
    assert base != fingerprint(cfg(), 1, None, x + 1, y)


def test_a_backup_is_resumed_only_by_the_training_that_made_it(tmp_path):
    backup = tmp_path / "backup"
    assert claim_backup(backup, "a") is False  # nothing to resume
    (backup / "chief").mkdir()
    (backup / "chief" / "checkpoint").write_text("epoch 3")
    assert claim_backup(backup, "a") is True
    assert claim_backup(backup, "b") is False  # other params or data: discarded
    assert not (backup / "chief").exists()
    assert (backup / "fingerprint").read_text() == "b"


def test_a_backup_without_fingerprint_is_discarded(tmp_path):
    (tmp_path / "chief").mkdir()
    (tmp_path / "chief" / "checkpoint").write_text("from an older version")
    assert claim_backup(tmp_path, "a") is False


@pytest.mark.parametrize(
    ("levels", "setting", "dim"),
    [
        (2, "auto", 2),  # a boolean plus the unknown slot: round(1.6 * 2^0.56) = 2
        (4, "auto", 3),  # three colours plus unknown
        (10, "auto", 6),
        (50, "auto", 14),
        (100, "auto", 16),  # round(21.2), capped at 16
        (10_000, "auto", 16),
        (4, 8, 8),  # an explicit width is used as given
        (100, 32, 32),
    ],
)
def test_embedding_dim_follows_fastais_rule(levels, setting, dim):
    assert embedding_dim(levels, setting) == dim


def test_embedding_params_are_validated(train_params):
    cfg = train_params
    assert cfg().categorical_encoding == "one_hot"  # by-hand params keep the old meaning
    assert cfg(categorical_encoding="embedding", embedding_dim=4).embedding_dim == 4
    for bad in ({"embedding_dim": 0}, {"embedding_dim": "wide"}, {"categorical_encoding": "x"}):
        with pytest.raises(ValueError):
            cfg(**bad)
