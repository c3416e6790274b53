"""Content hashes of the pipeline's data against ``dvc.lock``: checked before a stage reads its
inputs, and the checks behind ``python -m pipelines.repair``.

DVC trusts its cache: an overwritten cache object is checked out, reported up to date and pushed
under the good hash. So every stage recomputes DVC's MD5 of each input another stage produced
and compares it with that stage's ``outs`` entry in ``dvc.lock`` before using it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from pipelines import paths
from pipelines.errors import PipelineError
from pipelines.io import file_md5, read_yaml

log = logging.getLogger(__name__)

REPAIR_HINT = "run `python -m pipelines.repair` to restore it from the DVC remote"


def dir_entries(path: Path) -> list[dict[str, str]]:
    """DVC's manifest of a directory output: one ``{"md5", "relpath"}`` per file, by relpath.

    Leftover atomic-write temporaries (``.*.tmp``) are skipped, as ``.dvcignore`` tells DVC."""
    entries = []
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        if any(part.startswith(".") and part.endswith(".tmp") for part in file.parts):
            continue
        entries.append({"md5": file_md5(file), "relpath": file.relative_to(path).as_posix()})
    return sorted(entries, key=lambda entry: entry["relpath"])


def manifest_md5(entries: list[dict[str, str]]) -> str:
    """The ``<md5>.dir`` DVC gives a directory with these entries (dvc_data's Tree.digest)."""
    body = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(body).hexdigest() + ".dir"  # noqa: S324


def content_md5(path: Path) -> str:
    path = Path(path)
    return manifest_md5(dir_entries(path)) if path.is_dir() else file_md5(path)


def locked_outputs(lock: Path = paths.DVC_LOCK) -> dict[str, str]:
    """Every stage output's MD5 in ``dvc.lock`` (``<md5>.dir`` for a directory), by path."""
    stages = (read_yaml(lock) or {}).get("stages", {})
    return {
        out["path"]: out["md5"]
        for entry in stages.values()
        for out in entry.get("outs", [])
        if "md5" in out
    }


def stage_entry(stage: str, dvc_yaml: Path = paths.DVC_YAML) -> dict[str, Any] | None:
    return ((read_yaml(dvc_yaml) or {}).get("stages") or {}).get(stage)


def _names(entries: list | None) -> list[str]:
    return [entry if isinstance(entry, str) else next(iter(entry)) for entry in entries or []]


def stage_outputs(stage: str) -> list[str]:
    entry = stage_entry(stage) or {}
    return _names(entry.get("outs")) + _names(entry.get("metrics")) + _names(entry.get("plots"))


def verify_inputs(stage: str) -> list[str]:
    """Check every ``stage`` dependency that another stage produced against ``dvc.lock``.

    Returns the paths checked; raises naming the first file whose content does not match."""
    entry = stage_entry(stage) or {}
    expected = locked_outputs()
    checked = []
    for dep in _names(entry.get("deps")):
        if dep not in expected or not Path(dep).exists():
            continue  # code, the source, or missing (the stage's own read says so)
        mismatch = _first_mismatch(Path(dep), expected[dep])
        if mismatch:
            name, want, got = mismatch
            raise PipelineError(
                f"{name}: content hash {got} does not match dvc.lock ({want}); the workspace "
                f"copy or the DVC cache is corrupt: {REPAIR_HINT}"
            )
        checked.append(dep)
    return checked


def _first_mismatch(path: Path, want: str) -> tuple[str, str, str] | None:
    if not want.endswith(".dir"):
        got = file_md5(path)
        return None if got == want else (str(path), want, got)
    entries = dir_entries(path)
    if manifest_md5(entries) == want:
        return None
    # Name the file: compare with the manifest DVC cached for this hash, when it has it.
    manifest = cache_object(want)
    listed = {e["relpath"]: e["md5"] for e in _json(manifest)} if manifest.exists() else {}
    for entry in entries:
        if listed.get(entry["relpath"], entry["md5"]) != entry["md5"]:
            return str(path / entry["relpath"]), listed[entry["relpath"]], entry["md5"]
    return str(path), want, manifest_md5(entries)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except ValueError:
        return []


def cache_object(md5: str, cache: Path = paths.DVC_CACHE) -> Path:
    return cache / md5[:2] / md5[2:]


def bad_cache_objects(cache: Path = paths.DVC_CACHE) -> dict[str, list[Path]]:
    """Per output in ``dvc.lock``, its cache objects whose content does not hash to their name
    (for a directory, its ``.dir`` manifest and the objects it lists)."""
    bad: dict[str, list[Path]] = {}
    for out, md5 in locked_outputs().items():
        obj = cache_object(md5, cache)
        if not obj.exists():
            continue
        if not md5.endswith(".dir"):
            found = [obj] if file_md5(obj) != md5 else []
        elif manifest_md5(entries := _json(obj)) != md5:
            found = [obj]
        else:
            objects = [cache_object(e["md5"], cache) for e in entries]
            found = [o for o in objects if o.exists() and file_md5(o) != o.parent.name + o.name]
        if found:
            bad[out] = found
    return bad


def bad_workspace_files() -> dict[str, str]:
    """Outputs in the workspace whose content does not match ``dvc.lock``, with what differs."""
    found = {}
    for out, md5 in locked_outputs().items():
        if Path(out).exists() and (mismatch := _first_mismatch(Path(out), md5)):
            found[out] = f"{mismatch[0]} (expected {mismatch[1]}, found {mismatch[2]})"
    return found
