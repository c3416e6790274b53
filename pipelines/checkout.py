"""Restore what made a registered version into a work tree: code, params, DVC lock and data.

Register logs ``dvc.lock`` and ``params.yaml`` into the version's run (``lineage/``), and
tags the version with the git commit. ``python -m pipelines.registry checkout <version>``
then builds a work tree from them:

1. a git worktree of the repository at the version's commit (detached);
2. the run's ``params.yaml`` and ``dvc.lock`` copied over the committed ones;
3. every DVC output of that lock checked out from this repository's cache (shared, not
   copied), pulled from the default remote first when the cache lacks some of it;
4. the landing data rebuilt from the restored raw snapshot and its partition manifest,
   because the source (``data.source``) is a DVC dependency, never cached. The rebuilt files
   hold the snapshot's pseudonymised values, never clear personal data, and ingest turns them
   back into the same snapshot. A source that cannot be rebuilt under its own name (CSV
   files, S3, an absolute path) goes to ``data/restored_source/`` and the restored
   ``params.yaml`` points there.

``dvc repro`` in that tree then reruns ingest and validate (the rebuilt source differs in
bytes from the original) and finds split, train, evaluate and quantize up to date: the
version's own model and metrics.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path, PurePosixPath

import pandas as pd
import yaml

from pipelines import paths
from pipelines.errors import PipelineError

log = logging.getLogger(__name__)

ARTIFACT_DIR = "lineage"
RESTORED_SOURCE = paths.DATA / "restored_source"


def checkout(mlflow_client, name: str, version: str, into: Path) -> Path:
    """Restore ``name`` version ``version`` into the new work tree ``into``; returns it."""
    from mlflow.exceptions import MlflowException

    try:
        model_version = mlflow_client.get_model_version(name, version)
        run = mlflow_client.get_run(model_version.run_id or model_version.tags["run_id"])
    except (MlflowException, KeyError) as exc:
        raise PipelineError(f"{name} v{version}: not found in the registry ({exc})") from exc
    commit = model_version.tags.get("git_commit") or run.data.tags.get("git_commit", "")
    if not commit or commit == "unknown":
        raise PipelineError(f"{name} v{version}: no git commit recorded; cannot restore its code")
    if into.exists() and any(into.iterdir()):
        raise PipelineError(f"{into}: exists and is not empty; choose another --into")
    with tempfile.TemporaryDirectory() as scratch:
        lineage = _download_lineage(mlflow_client, run.info.run_id, Path(scratch), name, version)
        _run(["git", "worktree", "add", "--detach", str(into), commit], Path.cwd())
        for file in ("params.yaml", "dvc.lock"):
            shutil.copy2(lineage / file, into / file)
    if run.data.tags.get("git_dirty") == "true":
        log.warning("%s v%s was trained with uncommitted changes to %s", name, version, commit)
    try:
        _restore_outputs(into)
        restore_source(into)
    except BaseException:
        _run(["git", "worktree", "remove", "--force", str(into)], Path.cwd(), check=False)
        raise
    log.info(
        "%s v%s restored into %s (commit %s): run `dvc repro` there", name, version, into, commit
    )
    return into


def restore_source(root: Path) -> Path:
    """Rebuild the landing partitions from the restored snapshot and manifest under ``root``."""
    manifest = json.loads((root / paths.RAW_MANIFEST).read_text())
    snapshot = pd.read_parquet(root / paths.RAW_SNAPSHOT)
    params_file = root / paths.PARAMS
    params = yaml.safe_load(params_file.read_text())
    names = [PurePosixPath(entry["file"]) for entry in manifest]
    in_place = all(
        not str(n).startswith("s3:") and not n.is_absolute() and n.suffix in (".parquet", ".pq")
        for n in names
    )
    if not in_place:
        names = [PurePosixPath(RESTORED_SOURCE, f"{i:05d}.parquet") for i in range(len(manifest))]
        params["data"]["source"] = str(RESTORED_SOURCE)
        params["ingest"]["file_format"] = "auto"
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        log.warning(
            "the source is restored as Parquet in %s; params.yaml points there", RESTORED_SOURCE
        )
    start = 0
    for name, entry in zip(names, manifest, strict=True):
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        rows = snapshot.iloc[start : start + entry["rows"]].reset_index(drop=True)
        rows.to_parquet(target, index=False)
        start += entry["rows"]
    return root / params["data"]["source"]


def _download_lineage(mlflow_client, run_id: str, scratch: Path, name: str, version: str) -> Path:
    from mlflow.exceptions import MlflowException

    try:
        folder = Path(mlflow_client.download_artifacts(run_id, ARTIFACT_DIR, str(scratch)))
    except (MlflowException, OSError) as exc:
        raise PipelineError(
            f"{name} v{version}: its run {run_id} holds no {ARTIFACT_DIR}/dvc.lock (registered "
            "before versions were anchored to their data); it cannot be restored"
        ) from exc
    for file in ("params.yaml", "dvc.lock"):
        if not (folder / file).exists():
            raise PipelineError(f"{name} v{version}: run {run_id} lacks {ARTIFACT_DIR}/{file}")
    return folder


def _restore_outputs(into: Path) -> None:
    """Check the lock's outputs out of this repository's cache; pull what it lacks."""
    dvc = str(Path(sys.executable).parent / "dvc")
    here = Path.cwd()
    _run([dvc, "config", "--local", "cache.dir", str((here / ".dvc" / "cache").resolve())], into)
    default = _run([dvc, "remote", "default"], here, check=False).strip()
    for line in _run([dvc, "remote", "list"], here, check=False).splitlines():
        # `dvc remote list` shows each URL resolved; the tree's own config would resolve a
        # relative one against the tree instead of this repository.
        fields = line.split()
        if len(fields) >= 2 and fields[0] == default:
            _run([dvc, "remote", "modify", "--local", default, "url", fields[1]], into)
    # Only the stages the lock holds: register's own entry is written after register logged
    # the lock, so a first version's lock has none, and DVC would call its outputs missing.
    stages = list((yaml.safe_load((into / "dvc.lock").read_text()) or {}).get("stages", {}))
    try:
        _run([dvc, "checkout", *stages], into)
    except PipelineError:
        log.info("the cache lacks some outputs: pulling them from the remote")
        _run([dvc, "pull", *stages], into)


def _run(command: list[str], cwd: Path, check: bool = True) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if check and done.returncode != 0:
        error = (done.stderr or done.stdout).strip().splitlines()
        raise PipelineError(
            f"`{' '.join(command[:3])}` failed in {cwd}: {error[-1] if error else ''}"
        )
    return done.stdout
