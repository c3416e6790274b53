"""Two registers at once against a real ``mlflow server``, from two checkouts of the same
commit as on two machines: the registry lock on the tracking backend lets one register, the
other waits and finds the same lineage's version. (From one checkout, the second register
would be refused at once by that checkout's stage lock, ``pipelines.run_guard``.)"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from pipelines import promotion
from tests.faults.faulty import MODEL, running_runs
from tests.integration.conftest import RepoCopy, copy_with_outputs
from tests.integration.services import MlflowServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(pipeline_repo, tmp_path_factory):
    repo = copy_with_outputs(pipeline_repo[0], tmp_path_factory.mktemp("race"), registry=False)
    other = RepoCopy(tmp_path_factory.mktemp("race-other") / "repo")
    shutil.copytree(repo.root, other.root, symlinks=True)  # the same commit, .git included
    server = MlflowServer(repo.root, tmp_path_factory.mktemp("race-server"))
    server.start()
    yield (repo, other), server
    server.stop()


def test_two_racing_registers_make_one_version(served, tmp_path):
    """The test holds the lock until both registers wait for it, so they always race."""
    import time

    from mlflow import MlflowClient
    from pipelines.registry_lock import held

    checkouts, server = served
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    logs = [tmp_path / f"register-{n}.log" for n in range(2)]
    with held(client, MODEL, wait_s=0, stale_s=3600):
        racers = [
            subprocess.Popen(
                [sys.executable, "-m", "pipelines.register"],
                cwd=checkout.root,
                env=checkout.env({"MLFLOW_TRACKING_URI": server.url}),
                stdout=subprocess.DEVNULL,
                stderr=log.open("w"),
                text=True,
            )
            for checkout, log in zip(checkouts, logs, strict=True)
        ]
        deadline = time.monotonic() + 300
        while not all("waiting for registry lock" in log.read_text() for log in logs):
            assert all(racer.poll() is None for racer in racers), [log.read_text() for log in logs]
            assert time.monotonic() < deadline, "the registers never reached the lock"
            time.sleep(0.5)
    for racer in racers:
        racer.wait(timeout=600)
    texts = [log.read_text() for log in logs]
    assert [racer.returncode for racer in racers] == [0, 0], texts[0][-2000:] + texts[1][-2000:]
    assert sum("gated already" in text for text in texts) == 1

    versions = client.search_model_versions(f"name='{MODEL}'")
    assert len(versions) == 1
    experiment = client.get_experiment_by_name("retraining").experiment_id
    runs = client.search_runs([experiment])
    assert len({run.info.run_id for run in runs}) == len(runs) == 2
    assert {run.info.status for run in runs} == {"FINISHED"} and running_runs(client) == []
    assert [e["to_version"] for e in promotion.history(client, MODEL)] == ["1"]
    assert client.search_registered_models(f"name='{MODEL}.lock'") == []
