"""The accepted-partition ledger: which landing partitions the last run validated, and how.

``data/validated/accepted.json`` lists, per partition of the raw snapshot, its file, content
hash and how many of its rows went to the clean and quarantine outputs (which hold the
partitions in order). A partition whose hash is unchanged is not validated again: its slices
of the previous outputs are reused. The ledger holds a fingerprint of the dataset's name, the
schema, the validate params and the PII salt; any change to them revalidates everything, so
outputs of one dataset are never reused for another.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines import paths
from pipelines.cleaning import Cleaned
from pipelines.config import ValidateParams
from pipelines.io import read_json, read_parquet
from pipelines.schema import Schema

log = logging.getLogger(__name__)


def validation_fingerprint(schema: Schema, cfg: ValidateParams, salt: str, dataset: str) -> str:
    """What accepted partitions were validated under; any change revalidates everything."""
    basis = {
        "dataset": dataset,
        "schema": schema.model_dump(mode="json"),
        "validate": cfg.model_dump(mode="json", exclude={"drift_warn", "drift_fail"}),
        "salt": hashlib.sha256(salt.encode()).hexdigest() if cfg.pii_policy == "hash" else "",
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()


def accepted_partitions(fingerprint: str) -> dict[str, dict]:
    """Partitions accepted by the previous run, with their slices of its clean and quarantine.

    Empty when there is no previous run, it ran under another schema or policy, or its outputs
    do not add up to its ledger.
    """
    if not paths.ACCEPTED_PARTITIONS.exists():
        return {}
    ledger = read_json(paths.ACCEPTED_PARTITIONS)
    if ledger.get("fingerprint") != fingerprint:
        log.info(
            "dataset, schema or validate params changed since the last run: revalidating everything"
        )
        return {}
    if not (paths.CLEAN.exists() and paths.QUARANTINE.exists()):
        return {}
    clean, quarantine = read_parquet(paths.CLEAN), read_parquet(paths.QUARANTINE)
    entries = ledger["partitions"]
    if sum(e["rows_clean"] for e in entries) != len(clean) or sum(
        e["rows_quarantined"] for e in entries
    ) != len(quarantine):
        log.warning("%s does not match the validated data: revalidating", paths.ACCEPTED_PARTITIONS)
        return {}
    accepted, clean_at, quarantine_at = {}, 0, 0
    for entry in entries:
        accepted[entry["file"]] = entry | {
            "clean": clean.iloc[clean_at : clean_at + entry["rows_clean"]],
            "quarantine": quarantine.iloc[
                quarantine_at : quarantine_at + entry["rows_quarantined"]
            ],
        }
        clean_at += entry["rows_clean"]
        quarantine_at += entry["rows_quarantined"]
    return accepted


@dataclass(frozen=True)
class Reuse:
    """Which partitions of the snapshot are reused as accepted, and which rows are new."""

    partitions: int  # in the manifest
    partition_of_row: np.ndarray  # per snapshot row: the index of its partition in the manifest
    reused: frozenset[int]  # indices of the partitions accepted before, unchanged since
    is_new: np.ndarray  # per snapshot row: True if it has to be validated


def plan_reuse(manifest: list[dict], accepted: dict[str, dict]) -> Reuse:
    """Reuse every partition whose content hash matches the one accepted under its file name."""
    partition_of_row = np.repeat(np.arange(len(manifest)), [p["rows"] for p in manifest])
    reused = frozenset(
        i
        for i, p in enumerate(manifest)
        if accepted.get(p["file"], {}).get("sha256") == p["sha256"]
    )
    return Reuse(len(manifest), partition_of_row, reused, ~np.isin(partition_of_row, list(reused)))


def assemble(
    manifest: list[dict], reuse: Reuse, accepted: dict[str, dict], cleaned: Cleaned
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """The clean and quarantine outputs, partition by partition, and the new ledger entries.

    ``cleaned`` is the result of validating the new rows (``reuse.is_new``) only.
    """
    new_partition = reuse.partition_of_row[reuse.is_new]
    clean_parts, quarantine_parts, entries = [], [], []
    for i, partition in enumerate(manifest):
        if i in reuse.reused:
            clean_part = accepted[partition["file"]]["clean"]
            quarantine_part = accepted[partition["file"]]["quarantine"]
        else:
            clean_part = cleaned.clean[new_partition[cleaned.kept] == i]
            quarantine_part = cleaned.quarantine[new_partition[~cleaned.kept] == i]
        clean_parts.append(clean_part)
        quarantine_parts.append(quarantine_part)
        entries.append(
            partition | {"rows_clean": len(clean_part), "rows_quarantined": len(quarantine_part)}
        )
    clean = pd.concat(clean_parts, ignore_index=True)
    quarantine = pd.concat(quarantine_parts, ignore_index=True)
    return clean, quarantine, entries
