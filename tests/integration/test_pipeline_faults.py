"""Faults in the pipeline itself, on real dvc: a corrupt cache object, two concurrent runs,
a killed ``dvc`` and an interrupted write inside a directory output."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines import paths, run_guard
from tests.integration.conftest import copy_with_outputs, train_repo

pytestmark = pytest.mark.integration

LOCKS = paths.RUN_LOCKS


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 - DVC's content address


def locked_md5(root: Path, out: Path) -> str:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return next(
        o["md5"]
        for s in lock["stages"].values()
        for o in s.get("outs", [])
        if o["path"] == str(out)
    )


def wait_for(predicate, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stage_pid(root: Path, stage: str) -> int | None:
    text = (
        (root / LOCKS / f"{stage}.lock").read_text()
        if (root / LOCKS / f"{stage}.lock").exists()
        else ""
    )
    return int(text) if text.strip().isdigit() else None


def stage_error(run, stage: str) -> list[str]:
    """The stage's own one-line errors (DVC adds its "failed to reproduce" line after them)."""
    return [line for line in run.stderr.splitlines() if line.startswith(f"ERROR [{stage}] ")]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_dvc(repo, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=repo.root,
        env=repo.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_a_corrupt_cache_object_is_refused_then_repaired_from_the_remote(pipeline_repo, tmp_path):
    repo = copy_with_outputs(pipeline_repo[0], tmp_path / "repo", registry=False)
    root = repo.root
    repo.dvc("push", check=True)
    good = locked_md5(root, paths.SPLIT_TRAIN)
    obj = root / ".dvc" / "cache" / "files" / "md5" / good[:2] / good[2:]
    obj.chmod(0o644)
    obj.write_bytes((root / paths.SPLIT_VAL).read_bytes())  # garbage that still parses
    (root / paths.SPLIT_TRAIN).unlink()
    repo.dvc("checkout")
    bad = md5(root / paths.SPLIT_TRAIN)
    assert bad != good  # DVC checked the garbage out: nothing downstream may use it

    refused = repo.dvc("repro", "-f", "-s", "rebalance")
    assert refused.returncode != 0
    [line] = stage_error(refused, "rebalance")
    assert line.startswith("ERROR [rebalance] data/splits/train.parquet: content hash"), line
    assert good in line and bad in line and "python -m pipelines.repair" in line

    assert repo.python("-m", "pipelines.repair", "--check").returncode == 1
    repaired = repo.python("-m", "pipelines.repair")
    assert repaired.returncode == 0, repaired.output[-3000:]
    assert md5(root / paths.SPLIT_TRAIN) == good and md5(obj) == good

    fresh = tmp_path / "fresh-remote"
    repo.dvc("remote", "add", "fresh", str(fresh), check=True)
    repo.dvc("push", "-r", "fresh", str(paths.SPLIT_TRAIN), check=True)
    assert md5(fresh / "files" / "md5" / good[:2] / good[2:]) == good


def test_a_second_repro_fails_at_once_and_leaves_the_snapshot_alone(pipeline_repo, tmp_path):
    repo = copy_with_outputs(pipeline_repo[0], tmp_path / "repo", registry=False)
    root = repo.root
    snapshot = (root / paths.RAW_SNAPSHOT).stat().st_mtime_ns, md5(root / paths.RAW_SNAPSHOT)
    first = start_dvc(repo, "repro", "-f", "-s", "split")
    try:
        pid = wait_for(lambda: stage_pid(root, "split"), what="split to start")
        os.kill(pid, signal.SIGSTOP)  # hold the first run inside its stage
        holder = json.loads((root / LOCKS / "pipeline.json").read_text())
        assert holder["pid"] == first.pid
        started = time.monotonic()
        second = repo.dvc("repro", "-f", "-s", "ingest", timeout=120)
        assert time.monotonic() - started < 60
        assert second.returncode != 0
        [line] = stage_error(second, "ingest")
        assert f"another pipeline run holds the lock (pid {first.pid} on " in line, second.output
        assert holder["started"] in line
        after = (root / paths.RAW_SNAPSHOT).stat().st_mtime_ns, md5(root / paths.RAW_SNAPSHOT)
        assert after == snapshot
        os.kill(pid, signal.SIGCONT)
        assert first.wait(timeout=300) == 0, first.stderr.read()[-3000:]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        first.stderr.close()
    # The finished run's lock is stale now (its dvc is gone): the next run takes it over.
    third = repo.dvc("repro", "-f", "-s", "split")
    assert third.returncode == 0, third.output[-3000:]


def test_killing_dvc_stops_the_training_it_started(tmp_path):
    repo = train_repo(tmp_path, {"epochs": 1000, "early_stopping_patience": 1000})
    run = start_dvc(repo, "repro", "-s", "train")
    try:
        for line in run.stderr:  # the stage's log comes through dvc
            if " epoch 1/1000 " in line:
                break  # training: the kill lands inside fit()
        pid = stage_pid(repo.root, "train")
        assert pid and alive(pid)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        wait_for(lambda: not alive(pid), timeout=20, what=f"train (pid {pid}) to stop")
    finally:
        try:
            os.killpg(run.pid, signal.SIGKILL)  # everything the test started, orphan included
        except ProcessLookupError:
            pass
        run.stderr.close()


def test_an_interrupted_write_in_a_directory_output_is_ignored_and_cleaned(
    pipeline_repo, tmp_path, monkeypatch
):
    repo = copy_with_outputs(pipeline_repo[0], tmp_path / "repo", registry=False)
    leftover = repo.root / paths.REFERENCE / ".landing__is_fraud.json.k1ll3d.tmp"
    leftover.write_text("{half a refer")
    status = repo.dvc("status", "validate", "--json", check=True)
    assert "data/reference" not in status.stdout  # .dvcignore: not part of the output
    assert repo.python("-m", "pipelines.repair", "--check").returncode == 0
    monkeypatch.chdir(repo.root)
    run_guard.clean_temporaries([str(paths.REFERENCE)])  # what validate does when it starts
    assert not leftover.exists()
