"""Validate: enforce the dataset's schema with Great Expectations, clean rows, quarantine rejects.

Three kinds of problems:

* **critical** (the run stops, exit 1, nothing downstream runs, no output is replaced): missing
  or extra columns, wrong dtypes, an all-null feature, row count or positive-class share
  outside the schema's bounds, a null or unknown label, a single class
  (``pipelines.expectations``);
* **row-level** (the row is repaired or quarantined, per ``validate.*`` policies): exact
  duplicates, duplicate ids, nulls and infinities, out-of-range numbers, unseen categories
  (``pipelines.cleaning``);
* **drift** against the last accepted snapshot (``pipelines.drift``): reported above
  ``validate.drift_warn``, critical above ``validate.drift_fail``.

PII columns (``pii: true`` in the schema) are hashed first, before Great Expectations or any
log line sees them, and dropped at the end under ``pii_policy: drop`` (``pipelines.pii``).
Partitions accepted by the previous run under the same schema and params are reused rather than
validated again (``pipelines.ledger``).
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import datasets, drift, gates, ledger, paths
from pipelines.cleaning import Cleaned, clean_rows, reason_counts, text_codes
from pipelines.config import DataParams, Params, ValidateParams, load_params
from pipelines.datasets import reference_path, schema_path
from pipelines.errors import PipelineError
from pipelines.expectations import column_problems, run_expectations
from pipelines.io import (
    atomic_dir,
    read_json,
    read_parquet,
    write_json_atomic,
    write_parquet_atomic,
)
from pipelines.personal_data import personal_columns
from pipelines.pii import pii_salt, pseudonymize
from pipelines.reports import stage_headline, write_results
from pipelines.schema import Schema, infer_schema, load_schema, publish_enforced_schema, save_schema
from pipelines.stage import run_stage

log = logging.getLogger(__name__)


def validate(
    raw: pd.DataFrame,
    schema: Schema,
    cfg: ValidateParams,
    docs_dir: Path,
    reference: dict | None = None,
    salt: str | None = None,
    prior: pd.DataFrame | None = None,
) -> Cleaned:
    """Check, clean and compare ``raw`` with the reference profile; raise on anything critical.

    ``prior`` is the raw rows of partitions accepted earlier, only read for duplicates.
    """
    salt = salt or pii_salt(schema, cfg.pii_policy)
    frame = pseudonymize(raw, schema, salt)
    codes = text_codes(frame)
    problems = column_problems(frame, schema)
    problems += run_expectations(frame, schema, docs_dir, codes)
    if problems:
        raise PipelineError(
            f"{paths.RAW_SNAPSHOT} failed {len(problems)} critical check(s): " + "; ".join(problems)
        )
    if prior is not None:
        prior = pseudonymize(prior, schema, salt)
    cleaned = clean_rows(frame, schema, cfg, prior, codes)
    positives = int(cleaned.clean[schema.target].sum())
    negatives = len(cleaned.clean) - positives
    if min(positives, negatives) < 2:
        raise PipelineError(
            f"column {schema.target!r}: after cleaning only {positives} positive and {negatives} "
            "negative rows remain; at least 2 of each are needed"
        )
    if cfg.pii_policy == "drop" and schema.pii:
        cleaned.clean = cleaned.clean.drop(columns=schema.pii, errors="ignore")
        cleaned.quarantine = cleaned.quarantine.drop(columns=schema.pii, errors="ignore")
    if reference is not None:
        cleaned.drift = _checked_drift(reference, cleaned, schema, cfg)
    return cleaned


def _checked_drift(
    reference: dict, cleaned: Cleaned, schema: Schema, cfg: ValidateParams
) -> dict[str, float]:
    """PSI per column against the reference; raise above ``drift_fail``, warn above ``drift_warn``."""
    psi = drift.compare(reference, cleaned.clean, schema, cleaned.value_counts)
    drifted = gates.failures(drift.gate(psi, cfg.drift_fail))
    if drifted:
        raise PipelineError(
            f"drift against the last accepted snapshot above validate.drift_fail="
            f"{cfg.drift_fail}: " + ", ".join(check.reason for check in drifted)
        )
    for name, value in psi.items():
        if value > cfg.drift_warn:
            log.warning("drift warning: column %r PSI %.3f > %s", name, value, cfg.drift_warn)
    return psi


def load_or_infer_schema(
    raw: pd.DataFrame, data: DataParams, cfg: ValidateParams
) -> tuple[Schema, bool]:
    datasets.adopt_legacy_files(data)
    path = schema_path(data)
    if path.exists():
        schema = load_schema(path)
        if schema.target != data.target:
            raise PipelineError(
                f"{path}: schema is for target {schema.target!r}, params say {data.target!r}"
            )
        _warn_unflagged_personal_columns(raw, schema, path)
        return schema, False
    personal = frozenset(personal_columns(raw, exclude=[data.target]))
    schema = infer_schema(raw, data, cfg.max_categories, cfg.range_margin, cfg.min_rows, personal)
    save_schema(schema, path)
    log.warning(
        "dataset %r has no schema yet: INFERRED %s from %s, which passes by construction; "
        "review it and commit it (later sources of this dataset are validated against it)",
        data.name,
        path,
        data.source,
    )
    return schema, True


def _warn_unflagged_personal_columns(raw: pd.DataFrame, schema: Schema, path: Path) -> None:
    found = personal_columns(raw, schema.pii, exclude=[schema.target])
    for name, why in found.items():
        if name in schema.columns and not schema.columns[name].pii:
            log.warning("%s: column %r looks personal (%s) but is not pii: true", path, name, why)


def _validate_new_rows(
    raw: pd.DataFrame,
    reuse: ledger.Reuse,
    schema: Schema,
    cfg: ValidateParams,
    reference: dict | None,
    salt: str,
) -> Cleaned:
    """Validate the rows of the partitions not reused; Data Docs go to their output folder.

    On a critical failure the Data Docs are kept in ``paths.FAILED_DATA_DOCS`` (the output
    folder keeps the last good ones) and the error names them.
    """
    if not reuse.is_new.any():
        return Cleaned(raw.iloc[:0], raw.iloc[:0], kept=np.zeros(0, dtype=bool))
    with atomic_dir(paths.DATA_DOCS) as docs_dir:
        try:
            new, accepted = raw[reuse.is_new], raw[~reuse.is_new]
            cleaned = validate(new, schema, cfg, docs_dir, reference, salt, prior=accepted)
        except PipelineError as exc:
            shutil.rmtree(paths.FAILED_DATA_DOCS, ignore_errors=True)
            shutil.copytree(docs_dir, paths.FAILED_DATA_DOCS)
            raise PipelineError(
                f"{exc} [Data Docs: {(paths.FAILED_DATA_DOCS / 'index.html').resolve()}]"
            ) from exc
    shutil.rmtree(paths.FAILED_DATA_DOCS, ignore_errors=True)
    log.info("Data Docs: %s", (paths.DATA_DOCS / "index.html").resolve())
    return cleaned


def _report(
    params: Params,
    schema: Schema,
    inferred: bool,
    reuse: ledger.Reuse,
    outputs: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    cleaned: Cleaned,
    reference: dict | None,
) -> dict:
    """The stage's report: what was validated, kept, quarantined, repaired and drifted."""
    raw, clean, quarantine = outputs
    cfg = params.validate_
    return {
        "passed": True,
        "dataset": params.data.name,
        "source": params.data.source,
        "schema": str(schema_path(params.data)),
        "schema_inferred": inferred,
        "partitions_total": reuse.partitions,
        "partitions_validated": reuse.partitions - len(reuse.reused),
        "rows_in": len(raw),
        "rows_validated": int(reuse.is_new.sum()),
        "rows_clean": len(clean),
        "rows_quarantined": len(quarantine),
        "quarantined": reason_counts(quarantine),
        "repaired": cleaned.repaired,
        "pii_columns": {name: cfg.pii_policy for name in schema.pii},
        "drift": {
            "reference_rows": reference["rows"] if reference else 0,
            "max_psi": max(cleaned.drift.values(), default=0.0),
            "warnings": sorted(k for k, v in cleaned.drift.items() if v > cfg.drift_warn),
            "psi": cleaned.drift,
        },
    }


def main() -> None:
    params = load_params()
    cfg = params.validate_
    raw = read_parquet(paths.RAW_SNAPSHOT)
    manifest = read_json(paths.RAW_MANIFEST)
    schema, inferred = load_or_infer_schema(raw, params.data, cfg)
    reference_file = reference_path(params.data)
    reference = read_json(reference_file) if reference_file.exists() else None
    if reference is None:
        log.info("no drift reference yet (%s): this snapshot becomes the first", reference_file)
    salt = pii_salt(schema, cfg.pii_policy)
    fingerprint = ledger.validation_fingerprint(
        schema, cfg, salt, datasets.dataset_key(params.data)
    )
    accepted = ledger.accepted_partitions(fingerprint)
    reuse = ledger.plan_reuse(manifest, accepted)
    log.info(
        "%d partition(s): %d already accepted, %d to validate (%d rows)",
        reuse.partitions,
        len(reuse.reused),
        reuse.partitions - len(reuse.reused),
        int(reuse.is_new.sum()),
    )
    cleaned = _validate_new_rows(raw, reuse, schema, cfg, reference, salt)
    clean, quarantine, entries = ledger.assemble(manifest, reuse, accepted, cleaned)

    write_parquet_atomic(clean, paths.CLEAN)
    write_parquet_atomic(quarantine, paths.QUARANTINE)
    write_json_atomic(
        {"fingerprint": fingerprint, "partitions": entries}, paths.ACCEPTED_PARTITIONS
    )
    write_json_atomic(drift.profile(clean, schema), reference_file)
    publish_enforced_schema(schema)
    report = _report(params, schema, inferred, reuse, (raw, clean, quarantine), cleaned, reference)
    metrics = stage_headline(
        "validate", rows=report["rows_clean"], max_psi=report["drift"]["max_psi"]
    )
    write_results(report, paths.VALIDATE_REPORT, metrics, paths.VALIDATE_METRICS)
    log.info(
        "validated: %d clean, %d quarantined %s, repaired %s, max drift PSI %.3f",
        len(clean),
        len(quarantine),
        report["quarantined"],
        cleaned.repaired,
        report["drift"]["max_psi"],
    )


def reinfer_schema() -> None:
    """``python -m pipelines.validate --reinfer-schema``: propose a new schema from the snapshot.

    Curated ``pii: true`` flags are kept and personal columns found by value are flagged;
    everything else is inferred afresh, so review the diff before committing it.
    """
    params = load_params()
    raw = read_parquet(paths.RAW_SNAPSHOT)
    path = schema_path(params.data)
    curated = frozenset(load_schema(path).pii) if path.exists() else frozenset()
    curated |= frozenset(personal_columns(raw, exclude=[params.data.target]))
    cfg = params.validate_
    schema = infer_schema(
        raw, params.data, cfg.max_categories, cfg.range_margin, cfg.min_rows, pii=curated
    )
    save_schema(schema, path)
    log.warning("re-inferred %s from %s: review `git diff %s`", path, paths.RAW_SNAPSHOT, path)


if __name__ == "__main__":
    run_stage("validate", reinfer_schema if "--reinfer-schema" in sys.argv[1:] else main)
