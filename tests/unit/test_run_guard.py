"""The pipeline lock, the stage lock, interrupted-write cleanup and DVC-compatible hashes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pipelines import integrity, paths, run_guard


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_guard, "_held", [])
    return tmp_path


def dead_process() -> run_guard.Process:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    holder = run_guard.describe(child.pid)
    child.wait()
    return holder


def write_holder(holder: run_guard.Process) -> None:
    paths.RUN_LOCKS.mkdir(parents=True, exist_ok=True)
    (paths.RUN_LOCKS / "pipeline.json").write_text(json.dumps(holder.__dict__))


def test_a_live_holder_refuses_another_run_naming_pid_host_and_start(workdir, monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "ingest")
    holder = run_guard.describe(os.getppid())  # alive for the whole test
    write_holder(holder)
    with pytest.raises(run_guard.RunLocked) as refused:
        run_guard.take_pipeline_lock(run_guard.describe(os.getpid()))
    message = str(refused.value)
    assert f"pid {holder.pid} on {holder.host}, started {holder.started}" in message
    assert "\n" not in message


def test_a_dead_holder_is_taken_over_and_the_owner_passes_again(workdir, monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "ingest")
    write_holder(dead_process())
    me = run_guard.describe(os.getpid())
    run_guard.take_pipeline_lock(me)
    run_guard.take_pipeline_lock(me)  # every stage of the owner's run passes
    assert json.loads((paths.RUN_LOCKS / "pipeline.json").read_text())["pid"] == os.getpid()


def test_a_stage_run_by_hand_checks_the_lock_but_does_not_take_it(workdir, monkeypatch):
    monkeypatch.delenv("DVC_STAGE", raising=False)
    run_guard.take_pipeline_lock(run_guard.describe(os.getpid()))
    assert not (paths.RUN_LOCKS / "pipeline.json").exists()


def test_a_reused_pid_is_not_a_live_holder():
    me = run_guard.describe(os.getpid())
    assert me.alive()
    assert not run_guard.Process(me.pid, me.host, me.started, me.ticks + 1).alive()
    assert not run_guard.Process(me.pid, "elsewhere", me.started, me.ticks).alive()


def test_a_second_copy_of_a_stage_is_refused_while_the_first_holds_its_lock(workdir):
    run_guard.take_stage_lock("train")
    with pytest.raises(
        run_guard.RunLocked, match=rf"stage train is already running \(pid {os.getpid()}\)"
    ):
        run_guard.take_stage_lock("train")
    for fd in run_guard._held:
        os.close(fd)


def test_interrupted_writes_are_removed_from_and_beside_outputs(workdir):
    reference = workdir / "data" / "reference"
    (reference / "sub").mkdir(parents=True)
    (reference / "kept.json").write_text("{}")
    (reference / ".kept.json.abc.tmp").write_text("{half")
    (reference / "sub" / ".x.parquet.1.tmp").write_text("")
    (workdir / "data" / ".float.xyz.tmp").mkdir()
    (workdir / "data" / ".float.old").mkdir()
    run_guard.clean_temporaries(["data/reference", "data/float"])
    assert sorted(p.name for p in (workdir / "data").rglob("*")) == [
        "kept.json",
        "reference",
        "sub",
    ]


def test_directory_hash_is_dvcs(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b" / "c.txt").write_text("c")
    (tmp_path / ".a.txt.1.tmp").write_text("ignored, as .dvcignore tells DVC")
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    fs = LocalFileSystem()
    odb = HashFileDB(fs, str(tmp_path.parent / "odb"))
    (tmp_path / ".a.txt.1.tmp").unlink()  # dvc_data alone knows no .dvcignore
    _, _, tree = build(odb, str(tmp_path), fs, "md5")
    (tmp_path / ".a.txt.1.tmp").write_text("ignored")
    assert integrity.content_md5(tmp_path) == tree.hash_info.value
