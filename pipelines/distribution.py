"""Where training runs: the tf.distribute strategy that ``train.strategy`` names.

* ``auto``: MirroredStrategy when two or more GPUs are visible, else the default strategy
  (a single-device MirroredStrategy only adds overhead);
* ``mirrored``: MirroredStrategy over every GPU, or over every logical CPU device when
  there is no GPU (this is how the multi-replica path is tested on CPU);
* ``multi_worker``: MultiWorkerMirroredStrategy over the workers that ``TF_CONFIG`` names
  (every worker runs this same stage with its own ``task``);
* ``default``: no distribution.
"""

from __future__ import annotations

import json
import logging
import os

from pipelines.errors import PipelineError
from pipelines.tf_runtime import tensorflow

log = logging.getLogger(__name__)


def parse_tf_config(raw: str | None) -> tuple[str, int, int]:
    """Check ``TF_CONFIG`` for ``multi_worker``; return (task type, task index, workers).

    MultiWorkerMirroredStrategy silently trains alone when TF_CONFIG is missing, which would
    look like success on every machine, so a missing or malformed one is an error here.
    """
    example = (
        'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    if not raw or not raw.strip():
        raise PipelineError(f"train.strategy multi_worker needs TF_CONFIG to be set; {example}")
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        task_type, index = task["type"], task["index"]
        members = cluster[task_type]
        workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PipelineError(
            f"TF_CONFIG is not valid ({type(exc).__name__}: {exc}); {example}"
        ) from exc
    if task_type not in ("chief", "worker") or not isinstance(index, int):
        raise PipelineError(
            f"TF_CONFIG task must be a chief or worker with an integer index; {example}"
        )
    if not 0 <= index < len(members):
        raise PipelineError(
            f"TF_CONFIG task index {index} is outside cluster.{task_type}; {example}"
        )
    return task_type, index, workers


def select_strategy(name: str):
    """The strategy for ``train.strategy`` ``name``; call it before TensorFlow runs any op."""
    tf, _ = tensorflow()
    if name == "multi_worker":
        task_type, index, workers = parse_tf_config(os.environ.get("TF_CONFIG"))
        log.info("multi_worker: this is %s %d of %d worker(s)", task_type, index, workers)
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "default" or (name == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])


def strategy_name(strategy) -> str:
    """The public class name of ``strategy``, for logs and the train report."""
    # tf.distribute.MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy.
    name = type(strategy).__name__
    return {"CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy"}.get(name, name)


def replica_device_types(strategy) -> set[str]:
    """Device types ("CPU", "GPU", ...) that hold this worker's replicas."""
    tf, _ = tensorflow()
    if not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy():
        # The default strategy has no device list; it runs where TensorFlow places ops.
        return {"GPU"} if tf.config.list_logical_devices("GPU") else {"CPU"}
    return {tf.DeviceSpec.from_string(d).device_type for d in strategy.extended.worker_devices}


def safe_steps_per_execution(requested: int, replicas: int) -> int:
    """``requested`` on one replica; 1 across several, where several steps per call crash.

    With TF 2.21, Keras 3's multi-step loop under MirroredStrategy on two logical CPU devices
    fails ("You must feed a value for placeholder tensor" in multi_step_on_iterator). tf-keras
    2.21, which this project uses, ran 2 to 50 steps per call there without error, but under
    MultiWorkerMirroredStrategy with the embedding model it fails: inside the multi-step loop
    the embeddings' sparse gradients are all-gathered, and when the workers' batches differ in
    size (the last one of an epoch) the collective aborts on a shape mismatch ([32,3] against
    [64,3]). Several replicas on GPUs could not be tested here, so the guard covers every
    multi-replica run. On one replica, several steps per call give the same weights as one
    (bench/train_speed.py: 1.2x to 1.5x the samples/s on this CPU).
    """
    if requested > 1 and replicas > 1:
        return 1
    return requested
