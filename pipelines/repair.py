"""Find and repair corrupt pipeline data: workspace outputs and DVC cache objects whose content
does not hash to what ``dvc.lock`` records (pipelines.integrity does the hashing).

    python -m pipelines.repair --check   # list what is corrupt; exit 1 if anything is
    python -m pipelines.repair           # delete it, dvc fetch the objects again, dvc checkout

DVC itself never rehashes its cache: ``dvc pull --force`` keeps a corrupt object and
``dvc push`` uploads it under the good hash, so the bad objects are deleted first.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipelines.errors import PipelineError
from pipelines.integrity import REPAIR_HINT, bad_cache_objects, bad_workspace_files
from pipelines.stage import run_stage

log = logging.getLogger(__name__)


def verify() -> list[str]:
    """The outputs whose workspace copy or cache objects are corrupt, each logged."""
    bad_objects, bad_files = bad_cache_objects(), bad_workspace_files()
    for out, objects in bad_objects.items():
        log.error("corrupt cache object(s) of %s: %s", out, ", ".join(map(str, objects)))
    for detail in bad_files.values():
        log.error("corrupt workspace file %s", detail)
    return sorted(set(bad_objects) | set(bad_files))


def repair() -> None:
    """Delete the corrupt cache objects and workspace copies, fetch those outputs again from
    the DVC remote and check them out; fail if anything is still wrong afterwards."""
    outs = verify()
    if not outs:
        log.info("workspace and cache match dvc.lock: nothing to repair")
        return
    for objects in bad_cache_objects().values():
        for obj in objects:
            obj.unlink()
    for out in bad_workspace_files():
        shutil.rmtree(out) if Path(out).is_dir() else Path(out).unlink()
    _dvc("fetch", *outs)
    _dvc("checkout", "--force", *outs)
    if still := verify():
        raise PipelineError(
            f"still corrupt after repair: {', '.join(still)}; the DVC remote holds no good copy"
        )
    log.info("repaired %s from the DVC remote", ", ".join(outs))


def _dvc(*args: str) -> None:
    dvc = Path(sys.executable).with_name("dvc")
    command = [str(dvc) if dvc.exists() else "dvc", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PipelineError(f"dvc {' '.join(args)} failed: {last}")


def main() -> None:
    if sys.argv[1:] not in ([], ["--check"]):
        raise PipelineError(f"unknown arguments {sys.argv[1:]}: use --check or nothing")
    if not sys.argv[1:]:
        repair()
        return
    if outs := verify():
        raise PipelineError(f"corrupt: {', '.join(outs)} (details above); {REPAIR_HINT}")
    log.info("workspace and cache match dvc.lock")


if __name__ == "__main__":
    run_stage("repair", main, record_failure=False)
