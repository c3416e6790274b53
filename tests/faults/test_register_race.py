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


def test_two_racing_registers_make_one_version(served):
    checkouts, server = served
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "pipelines.register"],
            cwd=checkout.root,
            env=checkout.env({"MLFLOW_TRACKING_URI": server.url}),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for checkout in checkouts
    ]
    logs = [racer.communicate(timeout=600)[1] for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    assert sum("waiting for registry lock" in log for log in logs) == 1, "they did not race"
    assert sum("gated already" in log for log in logs) == 1

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    versions = client.search_model_versions(f"name='{MODEL}'")
    assert len(versions) == 1
    experiment = client.get_experiment_by_name("retraining").experiment_id
    runs = client.search_runs([experiment])
    assert len({run.info.run_id for run in runs}) == len(runs) == 2
    assert {run.info.status for run in runs} == {"FINISHED"} and running_runs(client) == []
    assert [e["to_version"] for e in promotion.history(client, MODEL)] == ["1"]
    assert client.search_registered_models(f"name='{MODEL}.lock'") == []
