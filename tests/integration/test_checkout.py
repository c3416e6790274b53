"""Data-version anchoring: a registered version's code, params, DVC lock and data come back.

The tiny pipeline registered v1. A full copy of that repository (its git history, DVC cache
and MLflow store) moves on to other data; then ``registry checkout 1`` restores v1 into a
new work tree, where ``dvc repro`` rebuilds only ingest and validate (from the restored
source) and finds every later stage up to date: v1's data, model and metrics."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.integration.conftest import RepoCopy, ran_stages

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]


def lock_outs(root, *stages: str) -> dict[str, str]:
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {o["path"]: o["md5"] for s in stages for o in lock[s]["outs"]}


def test_checkout_restores_a_version_s_data_and_metrics(tmp_path, pipeline_repo):
    source, _ = pipeline_repo
    repo = RepoCopy(tmp_path / "repo")
    shutil.copytree(source.root, repo.root, symlinks=True)
    v1_metrics = json.loads((repo.root / "data/metrics/evaluate.json").read_text())
    v1_outs = lock_outs(repo.root, "split", "train", "evaluate")

    repo.python("-m", "pipelines.simulate", "--first-day", "3", "--days", "1", check=True)
    repo.dvc("repro", "split", check=True)  # the workspace moves on to other data
    assert lock_outs(repo.root, "split") != lock_outs(source.root, "split")

    into = tmp_path / "v1"
    done = repo.python("-m", "pipelines.registry", "checkout", "1", "--into", str(into))
    assert done.returncode == 0, done.output[-3000:]
    restored = RepoCopy(into)
    assert lock_outs(into, "split", "train", "evaluate") == v1_outs  # v1's logged dvc.lock
    rerun = restored.dvc("repro", "evaluate", check=True)
    assert ran_stages(rerun.output) == ["ingest", "validate"]
    assert lock_outs(into, "split", "train", "evaluate") == v1_outs
    assert json.loads((into / "data/metrics/evaluate.json").read_text()) == v1_metrics

    again = repo.python("-m", "pipelines.registry", "checkout", "1", "--into", str(into))
    assert again.returncode == 1 and "not empty" in again.last_error_line()
