"""The multi-replica paths: MirroredStrategy on two logical CPU devices matches one device, and
two local workers complete a MultiWorkerMirroredStrategy run."""

import json
import socket
import subprocess
import sys

import pytest

from pipelines import paths
from tests.integration.conftest import REPO, train_repo

pytestmark = pytest.mark.integration

SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from sklearn.metrics import average_precision_score
from pipelines.config import DataParams, SplitParams, TrainParams
from pipelines.features import FeatureTransform
from pipelines.schema import infer_schema
from pipelines.split import split
from pipelines.tf_runtime import predict_proba
from pipelines.train import train
from tests.conftest import make_frame

frame = make_frame(n=3000, positive_rate=0.1, seed=7)
schema = infer_schema(frame, DataParams(source="x", target="label", positive_label=1), 10, 3.0, 10)
split_cfg = SplitParams(method="stratified", val_size=0.2, test_size=0.2, time_column=None, group_column=None)
train_frame, val, test = split(frame, schema, split_cfg, seed=0)
results = {}
for strategy in ("default", "mirrored"):
    cfg = TrainParams(strategy=strategy, epochs=8, batch_size=32, learning_rate=0.003, hidden_units=[16],
                      dropout=0.0, early_stopping_patience=8, categorical_encoding="embedding")
    result = train(train_frame, val, schema, cfg, seed=1)
    scores = predict_proba(result.model, result.transform.transform(test))
    results[strategy] = dict(result.report, test_pr_auc=average_precision_score(test["label"], scores))
print(json.dumps(results))
"""


def test_mirrored_on_two_logical_cpus_matches_single_device():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    single, mirrored = results["default"], results["mirrored"]
    assert single["replicas"] == 1 and mirrored["replicas"] == 2
    assert mirrored["strategy"] == "MirroredStrategy"
    assert mirrored["global_batch"] == 2 * single["global_batch"] == 64
    # Same data, seed and epochs: the two runs differ only in how gradients are summed.
    assert mirrored["test_pr_auc"] == pytest.approx(single["test_pr_auc"], abs=0.1), results
    assert mirrored["test_pr_auc"] > 0.25, results  # well above the 0.1 base rate


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:  # all bound at once, so the ports differ
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_two_local_workers_complete_a_multi_worker_run(tmp_path):
    # Both workers share one folder, as workers share storage in a real cluster: the chief
    # writes the model and the backup, the other worker writes nothing there.
    repo = train_repo(
        tmp_path / "repo",
        {"strategy": "multi_worker", "epochs": 2, "batch_size": 32, "hidden_units": [8]},
        rows=800,
    )
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    try:
        for index in range(2):
            task = {"type": "worker", "index": index}
            with (tmp_path / f"worker{index}.log").open("w") as log:
                workers.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "pipelines.train"],
                        cwd=repo.root,
                        env=repo.env({"TF_CONFIG": json.dumps({"cluster": cluster, "task": task})}),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        codes = [worker.wait(timeout=300) for worker in workers]
    finally:
        for worker in workers:  # a worker left waiting for its peer must not outlive the test
            if worker.poll() is None:
                worker.kill()
    logs = [(tmp_path / f"worker{index}.log").read_text() for index in range(2)]
    assert codes == [0, 0], "\n".join(log[-3000:] for log in logs)
    report = json.loads((repo.root / paths.TRAIN_REPORT).read_text())
    assert report["strategy"] == "MultiWorkerMirroredStrategy"
    assert report["replicas"] == 2 and report["global_batch"] == 64
    assert report["epochs_run"] == 2
    assert (repo.root / paths.KERAS_MODEL).exists()
    assert "worker 0 of 2" in logs[0] and "worker 1 of 2" in logs[1]
    assert "not the chief worker" in logs[1]
    assert not (repo.root / paths.TRAIN_BACKUP).exists()
