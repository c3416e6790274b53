"""Atomic file writes and typed reads.

Every output is written to a temporary sibling and moved into place with ``os.replace``, so a
killed stage leaves the previous file or none, never half of one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pipelines.errors import PipelineError

MD5_BLOCK = 1 << 20

# pandas is imported where it is used: the Airflow tasks import this module through
# pipelines.orchestration and would otherwise pay about 0.3 s for it in every task process.
if TYPE_CHECKING:
    import pandas as pd


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success move it over ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; on success swap it in for ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_parquet_atomic(frame: pd.DataFrame, target: Path) -> None:
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)


def write_json_atomic(payload: Any, target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=_jsonable) + "\n")


def write_text_atomic(text: str, target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_csv_atomic(frame: pd.DataFrame, target: Path) -> None:
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False)


def read_parquet(path: Path) -> pd.DataFrame:
    if not Path(path).exists():
        raise PipelineError(f"{path}: missing; run the upstream stage first (dvc repro)")
    import pandas as pd

    return pd.read_parquet(path)


def read_csv(path: Path) -> pd.DataFrame:
    if not Path(path).exists():
        raise PipelineError(f"{path}: missing; run the upstream stage first (dvc repro)")
    import pandas as pd

    return pd.read_csv(path)


def read_json(path: Path) -> Any:
    if not Path(path).exists():
        raise PipelineError(f"{path}: missing; run the upstream stage first (dvc repro)")
    return json.loads(Path(path).read_text())


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_yaml(path: Path) -> Any:
    """The parsed YAML file, or None if there is none; shared between callers, so read only."""
    if not path.exists():
        return None
    return _parsed_yaml(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _parsed_yaml(path: Path, mtime_ns: int) -> Any:
    """One parse per file version, with libyaml's parser (8x PyYAML's on dvc.lock): a stage
    start reads dvc.yaml three times, and register reads dvc.lock twice."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(), Loader=loader)


def file_md5(path: Path) -> str:
    """The file's MD5, DVC's content address (not a security hash)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(MD5_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
