"""A dataset's identity: the name (``data.name``) that owns its schema, drift reference and
accepted partitions.

A dataset is not its source file: next month's export of the same table under another file
name is the same dataset, validated against the same schema and compared with the same drift
reference. ``data.name`` defaults to ``<register.model_name>__<data.target>``, so a new export
of the same table needs no new key, and a different dataset pointed at with only the
``data:`` keys (another target) gets a freshly inferred schema. Two datasets that share a
target column's name need a ``data.name`` each.

Before ``data.name`` existed, schema and reference were keyed on the source's file stem and
the target (``<stem>__<target>``); ``adopt_legacy_files`` moves such files to the dataset's
name once, and says so.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pandas as pd

from pipelines import paths
from pipelines.config import DataParams
from pipelines.errors import PipelineError
from pipelines.io import read_json

log = logging.getLogger(__name__)


def legacy_slug(data: DataParams) -> str:
    """The key before datasets had names: the source's file stem and the target."""
    stem = data.source.rstrip("/").removeprefix("s3://")
    stem = re.sub(r"\.(csv|parquet|pq)$", "", stem.split("/")[-1] or stem, flags=re.I)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{stem}__{data.target}").strip("_.")


def dataset_key(data: DataParams) -> str:
    """The file name stem of the dataset's schema and reference."""
    return data.name or legacy_slug(data)


def schema_path(data: DataParams) -> Path:
    """The dataset's reviewable schema (committed to git)."""
    return paths.SCHEMAS / f"{dataset_key(data)}.yaml"


def reference_path(data: DataParams) -> Path:
    """The dataset's drift reference profile (see ``pipelines.drift``)."""
    return paths.REFERENCE / f"{dataset_key(data)}.json"


def adopt_legacy_files(data: DataParams) -> list[tuple[Path, Path]]:
    """Move a schema and reference keyed the old way (source stem) to the dataset's name.

    Only when the dataset has none of its own yet: its own files always win. Returns the moves
    made, each also logged as a warning (the schema's move is a rename to commit).
    """
    if not data.name:
        return []
    legacy = legacy_slug(data)
    moves = []
    for folder, suffix in ((paths.SCHEMAS, ".yaml"), (paths.REFERENCE, ".json")):
        old, new = folder / f"{legacy}{suffix}", folder / f"{data.name}{suffix}"
        if old != new and old.exists() and not new.exists():
            os.replace(old, new)
            log.warning(
                "%s was keyed on the source's file name; it now belongs to dataset %r as %s "
                "(commit the rename)",
                old,
                data.name,
                new,
            )
            moves.append((old, new))
    return moves


def check_outputs_current(data: DataParams, test: pd.DataFrame) -> None:
    """Stop, in one line, when the data outputs were made for another dataset than params.yaml
    names, or the model was trained on columns the test split does not have: a stage forced on
    its own (``dvc repro -f -s register``) after params.yaml moved to another dataset."""
    stale = "the pipeline's outputs are stale; run `dvc repro` (not -s) to rebuild them"
    report = read_json(paths.VALIDATE_REPORT) if paths.VALIDATE_REPORT.exists() else {}
    for key, expected in (("dataset", data.name), ("source", data.source)):
        made_for = report.get(key)
        if made_for is not None and made_for != expected:
            raise PipelineError(
                f"{paths.VALIDATE_REPORT}: the data outputs were made for {key} {made_for!r}, "
                f"params.yaml names {expected!r}: {stale}"
            )
    if data.target not in test.columns:
        raise PipelineError(
            f"{paths.SPLIT_TEST}: has no column {data.target!r} (data.target): {stale}"
        )
    if paths.FEATURE_TRANSFORM.exists():
        transform = json.loads(paths.FEATURE_TRANSFORM.read_text())
        trained = [*transform.get("numeric", []), *transform.get("categorical", {})]
        missing = sorted(set(trained) - set(test.columns))
        if missing:
            raise PipelineError(
                f"{paths.FEATURE_TRANSFORM}: the model was trained on columns the test split "
                f"lacks ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}): {stale}"
            )
