"""Train's pure decisions: the steps-per-execution guard and the dtype policy.
No TensorFlow is imported here."""

import pytest

from pipelines.train import dtype_policy, safe_steps_per_execution


@pytest.mark.parametrize(
    ("requested", "strategy", "replicas", "devices", "used"),
    [
        (4, "MirroredStrategy", 2, {"CPU"}, 1),  # the known crash: forced to 1
        (4, "MirroredStrategy", 2, {"GPU"}, 4),
        (4, "MirroredStrategy", 1, {"CPU"}, 4),  # one replica: nothing to reduce across
        (4, "_DefaultDistributionStrategy", 1, {"CPU"}, 4),
        (1, "MirroredStrategy", 2, {"CPU"}, 1),
    ],
)
def test_steps_per_execution_guard(requested, strategy, replicas, devices, used):
    assert safe_steps_per_execution(requested, strategy, replicas, devices) == used


@pytest.mark.parametrize(
    ("setting", "gpus", "policy"),
    [("auto", 0, "float32"), ("auto", 1, "mixed_float16"), ("off", 2, "float32")],
)
def test_mixed_precision_only_on_gpu(setting, gpus, policy):
    assert dtype_policy(setting, gpus) == policy
