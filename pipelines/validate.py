"""Validate: enforce the dataset's schema with Great Expectations, clean rows, quarantine rejects.

Three kinds of problems:

* **critical** (the run stops, exit 1, nothing downstream runs, no output is replaced): missing
  or extra columns, wrong dtypes, an all-null feature, row count or positive-class share
  outside the schema's bounds, a null or unknown label, a single class;
* **row-level** (the row is repaired or quarantined, per ``validate.*`` policies): exact
  duplicates, duplicate ids, nulls and infinities, out-of-range numbers, unseen categories;
* **drift** against the last accepted snapshot (``pipelines.drift``): reported above
  ``validate.drift_warn``, critical above ``validate.drift_fail``.

PII columns (``pii: true`` in the schema) are hashed first, before Great Expectations or any
log line sees them, and dropped at the end under ``pii_policy: drop``. Great Expectations runs
the critical suite and a row-level report suite in one checkpoint, then builds Data Docs for
both; the cleaning itself is vectorised pandas driven by the same schema, so each rejected row
gets a reason in the quarantine file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import drift, paths
from pipelines.config import DataParams, ValidateParams, load_params
from pipelines.errors import PipelineError
from pipelines.io import (
    atomic_dir,
    read_json,
    read_parquet,
    write_json_atomic,
    write_parquet_atomic,
)
from pipelines.schema import (
    UNKNOWN_CATEGORY,
    Schema,
    canonical_label,
    canonical_labels,
    category_value,
    infer_schema,
    load_schema,
    reference_path,
    save_schema,
    schema_path,
)
from pipelines.stage import run_stage

log = logging.getLogger(__name__)

REASON = "reason"
PII_SALT_ENV = "PIPELINE_PII_SALT"


@dataclass
class Cleaned:
    clean: pd.DataFrame
    quarantine: pd.DataFrame
    quarantined: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)
    drift: dict[str, float] = field(default_factory=dict)
    kept: np.ndarray | None = None  # per input row: True if it is in ``clean``


def column_problems(frame: pd.DataFrame, schema: Schema) -> list[str]:
    """Critical column defects: numbers that arrived as text, a feature with no value at all."""
    problems = []
    for name in schema.feature_columns:
        if name not in frame.columns:
            continue
        series = frame[name]
        if series.isna().all():
            problems.append(f"column {name!r}: every value is null")
        elif name in schema.numeric and not (
            pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
        ):
            example = series.dropna().astype(str).head(3).tolist()
            problems.append(
                f"column {name!r}: expected numeric ({schema.columns[name].kind}), "
                f"found text such as {example}"
            )
    return problems


def pseudonymize(frame: pd.DataFrame, schema: Schema, salt: str) -> pd.DataFrame:
    """Replace every PII value by a salted SHA-256 digest (nulls stay null)."""
    frame = frame.copy(deep=False)  # copy-on-write: replacing a column leaves the input as it is
    for name in schema.pii:
        if name in frame.columns:
            frame[name] = frame[name].map(
                lambda value: hashlib.sha256(f"{salt}{value}".encode()).hexdigest()[:32],
                na_action="ignore",
            )
    return frame


def pii_salt(schema: Schema, policy: str) -> str:
    """The salt from the environment; ``drop`` needs none and gets a throwaway one."""
    if not schema.pii or policy == "drop":
        return secrets.token_hex(16)
    salt = os.environ.get(PII_SALT_ENV, "")
    if not salt:
        raise PipelineError(
            f"validate.pii_policy=hash: set {PII_SALT_ENV} to a secret salt to hash the PII "
            f"columns {schema.pii}"
        )
    return salt


Codes = dict[str, tuple[np.ndarray, pd.Index]]


def text_codes(frame: pd.DataFrame) -> Codes:
    """Each non-numeric column as integer codes of its distinct values (nulls -1), with them.

    Equal values get equal codes, and codes are far cheaper to hash and compare than millions
    of strings.
    """
    return {
        name: pd.factorize(frame[name], use_na_sentinel=True)
        for name in frame.columns
        if not (
            pd.api.types.is_numeric_dtype(frame[name])
            or pd.api.types.is_datetime64_any_dtype(frame[name])
        )
    }


def build_suites(schema: Schema):
    """The critical suite (stops the run) and the row-level suite (reported, then cleaned)."""
    import great_expectations as gx

    critical = gx.ExpectationSuite(name="critical")
    critical.add_expectation(
        gx.expectations.ExpectTableColumnsToMatchSet(
            column_set=list(schema.columns), exact_match=True
        )
    )
    critical.add_expectation(
        gx.expectations.ExpectTableRowCountToBeBetween(
            min_value=schema.min_rows, max_value=schema.max_rows
        )
    )
    # Positive share as "mostly" bounds on the label column; nulls are left to the checks below.
    critical.add_expectation(
        gx.expectations.ExpectColumnValuesToBeInSet(
            column=schema.target,
            value_set=[schema.positive_label],
            mostly=schema.min_positive_share,
            meta={"bound": f"positive share below min_positive_share={schema.min_positive_share}"},
        )
    )
    critical.add_expectation(
        gx.expectations.ExpectColumnValuesToNotBeInSet(
            column=schema.target,
            value_set=[schema.positive_label],
            mostly=round(1 - schema.max_positive_share, 6),
            meta={"bound": f"positive share above max_positive_share={schema.max_positive_share}"},
        )
    )
    critical.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column=schema.target))
    critical.add_expectation(
        gx.expectations.ExpectColumnValuesToBeInSet(
            column=schema.target, value_set=schema.label_values
        )
    )
    critical.add_expectation(
        gx.expectations.ExpectColumnDistinctValuesToContainSet(
            column=schema.target, value_set=schema.label_values
        )
    )
    row_level = gx.ExpectationSuite(name="row_level")
    for name, col in schema.columns.items():
        if col.role == "numeric":
            row_level.add_expectation(
                gx.expectations.ExpectColumnValuesToBeBetween(
                    column=name, min_value=col.min, max_value=col.max
                )
            )
        if col.role == "categorical":
            row_level.add_expectation(
                gx.expectations.ExpectColumnValuesToBeInSet(column=name, value_set=col.categories)
            )
        if col.role in ("numeric", "categorical") and not col.nullable:
            row_level.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column=name))
        if col.role == "id":
            row_level.add_expectation(gx.expectations.ExpectColumnValuesToBeUnique(column=name))
    return critical, row_level


def run_expectations(
    frame: pd.DataFrame, schema: Schema, docs_dir: Path, codes: Codes | None = None
) -> list[str]:
    """Run both suites in one checkpoint, build Data Docs into ``docs_dir``; return critical failures.

    ``codes`` is ``text_codes(frame)`` when the caller has it already.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        site_name="local",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(Path(docs_dir).resolve()),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    batch = context.data_sources.add_pandas("pandas").add_dataframe_asset(name="snapshot")
    batch_definition = batch.add_batch_definition_whole_dataframe("whole")
    definitions = [
        context.validation_definitions.add(
            gx.ValidationDefinition(
                name=suite.name, data=batch_definition, suite=context.suites.add(suite)
            )
        )
        for suite in build_suites(schema)
    ]
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="validate",
            validation_definitions=definitions,
            # BASIC, not SUMMARY: SUMMARY adds the row indices of the first 20 unexpected values,
            # which GX gets from one more filtered copy of the whole frame per column-map
            # expectation (about 1.2 s at 1M rows x 30 columns) and which neither our messages
            # nor Data Docs show. BASIC keeps the unexpected count, percent and up to 20 sample
            # values; what Data Docs lose is a count beside each sample value, which SUMMARY
            # only shows when all the unexpected values fit in the sample. Nor do we want the
            # query listing every unexpected row index (one more copy each).
            result_format={"result_format": "BASIC", "return_unexpected_index_query": False},
        )
    )
    labelled = frame.copy(deep=False)  # copy-on-write: replacing columns leaves the input as it is
    if schema.target in labelled.columns:
        labelled[schema.target] = canonical_labels(labelled[schema.target]).astype("category")
    # Great Expectations' pandas engine copies the whole frame, filtered, for every metric of
    # an expectation on a column with nulls; text as categories makes those copies take
    # integer codes instead of strings (1M rows x 30 columns: 64 ms a copy instead of 183 ms).
    # The categories come from the codes the cleaning uses too: the text is hashed once and
    # never sorted.
    codes = text_codes(frame) if codes is None else codes
    for name, (column_codes, distinct) in codes.items():
        if name != schema.target and (
            pd.api.types.is_string_dtype(frame[name]) or frame[name].dtype == object
        ):
            labelled[name] = pd.Categorical.from_codes(column_codes, categories=distinct)
    result = checkpoint.run(batch_parameters={"dataframe": labelled})
    # One build for both results rather than the checkpoint's UpdateDataDocsAction, which builds
    # once per result with a fresh Jinja environment each time (its templates compiled again)
    # and renders the index page twice: the same pages, 0.15-0.2 s sooner at any size. Only our
    # site: by default GX also renders every page into the ephemeral context's own site, a
    # temporary folder that is never removed.
    context.build_data_docs(
        site_names=["local"],
        resource_identifiers=[
            *result.run_results,
            *(ExpectationSuiteIdentifier(name=d.suite.name) for d in definitions),
        ],
    )
    failures = []
    for validation in result.run_results.values():
        if validation.suite_name != "critical":
            continue
        for outcome in validation.results:
            if not outcome.success:
                failures.append(_describe_failure(outcome))
    return failures


def _describe_failure(outcome) -> str:
    config = outcome.expectation_config
    where = f"column {config.kwargs['column']!r}: " if config.kwargs.get("column") else ""
    if config.meta and "bound" in config.meta:
        share = outcome.result.get("unexpected_percent")
        if share is not None and config.type == "expect_column_values_to_be_in_set":
            share = 100 - share
        return f"{where}{config.meta['bound']} (observed {share:.3f}%)"
    observed = outcome.result.get("observed_value")
    unexpected = outcome.result.get("partial_unexpected_list")
    detail = f"observed {observed}" if observed is not None else ""
    if unexpected:
        detail = f"{outcome.result.get('unexpected_count')} bad values such as {unexpected[:5]}"
    if outcome.exception_info and outcome.exception_info.get("raised_exception"):
        detail = outcome.exception_info.get("exception_message", "").splitlines()[0]
    return f"{where}{config.type} failed ({detail})".replace("()", "").strip()


def reason_counts(quarantine: pd.DataFrame) -> dict[str, int]:
    """Quarantined rows per reason."""
    if quarantine.empty:
        return {}
    return {str(k): int(v) for k, v in quarantine[REASON].value_counts().sort_index().items()}


def clean_rows(
    frame: pd.DataFrame,
    schema: Schema,
    cfg: ValidateParams,
    prior: pd.DataFrame | None = None,
    codes: Codes | None = None,
) -> Cleaned:
    """Repair or quarantine each row-level defect; the target becomes 0/1 (1 = positive).

    ``prior`` holds the raw rows of partitions accepted before: a row or id repeating one of
    them is a duplicate too. ``codes`` is ``text_codes(frame)`` when the caller has it already.
    """
    # The first reason found wins; plain numpy arrays keep this cheap on millions of rows.
    reasons = np.full(len(frame), None, dtype=object)
    rejected = np.zeros(len(frame), dtype=bool)
    repaired: dict[str, int] = {}

    def reject(mask: np.ndarray, reason: str) -> None:
        new = mask & ~rejected
        reasons[new] = reason
        rejected[new] = True

    def count_kept(mask: np.ndarray) -> int:
        return int((mask & ~rejected).sum())

    # Duplicates are found on codes of the text columns. The prior rows come first, so a new
    # row repeating one of them is the duplicate.
    if prior is None or prior.empty:
        both, factorized = frame, text_codes(frame) if codes is None else codes
    else:
        both = pd.concat([prior[frame.columns], frame])
        factorized = text_codes(both)
    new_rows = slice(len(both) - len(frame), None)

    def repeated(values: np.ndarray) -> np.ndarray:
        return pd.Series(values).duplicated(keep="first").to_numpy()[new_rows]

    # One 64-bit hash per row, mixed from one hash per column: far faster than comparing 30
    # columns, collisions negligible.
    row_hashes = np.zeros(len(both), dtype=np.uint64)
    for name in both.columns:
        if name in factorized:
            column_hashes = pd.util.hash_array(factorized[name][0])
        else:
            column_hashes = pd.util.hash_pandas_object(both[name], index=False).to_numpy()
        row_hashes = (row_hashes * np.uint64(1_000_003)) ^ column_hashes
    reject(repeated(row_hashes), "duplicate_row")
    for name in schema.features("id"):
        codes = factorized[name][0] if name in factorized else both[name].to_numpy()
        reject(repeated(codes) & frame[name].notna().to_numpy(), f"duplicate_id:{name}")

    def codes_of(name: str) -> tuple[np.ndarray, pd.Index]:
        if name in factorized:
            codes, distinct = factorized[name]
            return codes[new_rows], distinct
        return pd.factorize(frame[name], use_na_sentinel=True)

    # Repaired columns are built whole, and filtered to the kept rows once at the end.
    numeric_values: dict[str, np.ndarray] = {}

    for name in schema.numeric:
        col = schema.columns[name]
        values = pd.to_numeric(frame[name], errors="coerce").astype("float64").to_numpy(copy=True)
        nulls = ~np.isfinite(values)  # infinities are missing values, not huge ones
        if nulls.any():
            if col.nullable or cfg.null_policy == "impute":
                values[nulls] = col.impute
                repaired[f"imputed:{name}"] = count_kept(nulls)
            else:
                values[nulls] = np.nan
                reject(nulls, f"null:{name}")
        outside = (values < col.min) | (values > col.max)
        if outside.any():
            if cfg.out_of_range_policy == "clip":
                values = np.clip(values, col.min, col.max)
                repaired[f"clipped:{name}"] = count_kept(outside)
            else:
                reject(outside, f"out_of_range:{name}")
        numeric_values[name] = values

    # Categories are decided per distinct value, then spread to rows by code; code -1 (null)
    # picks the last entry of each per-value array.
    category_codes: dict[str, tuple[np.ndarray, pd.api.extensions.ExtensionArray]] = {}
    for name in schema.categorical:
        col = schema.columns[name]
        codes, distinct = codes_of(name)
        text = np.array([category_value(value) for value in distinct] + [None], dtype=object)
        nulls = codes < 0
        if nulls.any():
            if col.nullable or cfg.null_policy == "impute":
                text[-1] = UNKNOWN_CATEGORY
                repaired[f"imputed:{name}"] = count_kept(nulls)
            else:
                reject(nulls, f"null:{name}")
        allowed = set(col.categories or []) | {UNKNOWN_CATEGORY}
        unseen_value = np.array([v is not None and v not in allowed for v in text], dtype=bool)
        unseen = unseen_value[codes]
        if unseen.any():
            if cfg.unseen_category_policy == "unknown":
                text[unseen_value] = UNKNOWN_CATEGORY
                repaired[f"unseen_to_unknown:{name}"] = count_kept(unseen)
            else:
                reject(unseen, f"unseen_category:{name}")
        category_codes[name] = (codes, pd.array(text, dtype="str"))

    kept = ~rejected
    columns = {}
    for name in frame.columns:
        if name in numeric_values:
            columns[name] = numeric_values[name][kept]
        elif name in category_codes:
            codes, text = category_codes[name]
            # Taking from the few distinct strings is much cheaper than converting a million;
            # code -1 % len(text) is the last entry, the null's replacement.
            columns[name] = text.take(codes[kept] % len(text))
        else:
            columns[name] = frame[name].array[kept]
    labels, distinct = codes_of(schema.target)
    positive = np.array([canonical_label(v) == schema.positive_label for v in distinct] + [False])
    columns[schema.target] = positive[labels[kept]].astype("int64")
    clean = pd.DataFrame(columns, copy=False)  # the arrays are new: no second copy
    quarantine = frame[rejected].copy()
    quarantine[REASON] = pd.Series(reasons[rejected], index=quarantine.index, dtype="str")
    return Cleaned(
        clean,
        quarantine.reset_index(drop=True),
        reason_counts(quarantine),
        repaired,
        kept=kept,
    )


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
        cleaned.drift = drift.compare(reference, cleaned.clean, schema)
        drifted = {k: v for k, v in cleaned.drift.items() if v > cfg.drift_fail}
        if drifted:
            raise PipelineError(
                f"drift against the last accepted snapshot above validate.drift_fail="
                f"{cfg.drift_fail}: "
                + ", ".join(f"column {k!r} PSI {v:.3f}" for k, v in sorted(drifted.items()))
            )
        for name, value in cleaned.drift.items():
            if value > cfg.drift_warn:
                log.warning("drift warning: column %r PSI %.3f > %s", name, value, cfg.drift_warn)
    return cleaned


def load_or_infer_schema(
    raw: pd.DataFrame, data: DataParams, cfg: ValidateParams
) -> tuple[Schema, bool]:
    path = schema_path(data)
    if path.exists():
        schema = load_schema(path)
        if schema.target != data.target:
            raise PipelineError(
                f"{path}: schema is for target {schema.target!r}, params say {data.target!r}"
            )
        return schema, False
    schema = infer_schema(raw, data, cfg.max_categories, cfg.range_margin, cfg.min_rows)
    save_schema(schema, path)
    log.warning(
        "no schema for this dataset: inferred %s from the data; review it and commit it", path
    )
    return schema, True


def validation_fingerprint(schema: Schema, cfg: ValidateParams, salt: str) -> str:
    """What accepted partitions were validated under; any change revalidates everything."""
    basis = {
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
        log.info("schema or validate params changed since the last run: revalidating everything")
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
    fingerprint = validation_fingerprint(schema, cfg, salt)
    accepted = accepted_partitions(fingerprint)

    partition_of_row = np.repeat(np.arange(len(manifest)), [p["rows"] for p in manifest])
    reused = {
        i
        for i, p in enumerate(manifest)
        if accepted.get(p["file"], {}).get("sha256") == p["sha256"]
    }
    is_new = ~np.isin(partition_of_row, list(reused))
    log.info(
        "%d partition(s): %d already accepted, %d to validate (%d rows)",
        len(manifest),
        len(reused),
        len(manifest) - len(reused),
        int(is_new.sum()),
    )
    cleaned = Cleaned(raw.iloc[:0], raw.iloc[:0], kept=np.zeros(0, dtype=bool))
    if is_new.any():
        with atomic_dir(paths.DATA_DOCS) as docs_dir:
            try:
                cleaned = validate(
                    raw[is_new], schema, cfg, docs_dir, reference, salt, prior=raw[~is_new]
                )
            except PipelineError as exc:
                shutil.rmtree(paths.FAILED_DATA_DOCS, ignore_errors=True)
                shutil.copytree(docs_dir, paths.FAILED_DATA_DOCS)
                raise PipelineError(
                    f"{exc} [Data Docs: {(paths.FAILED_DATA_DOCS / 'index.html').resolve()}]"
                ) from exc
        shutil.rmtree(paths.FAILED_DATA_DOCS, ignore_errors=True)
        log.info("Data Docs: %s", (paths.DATA_DOCS / "index.html").resolve())

    new_partition = partition_of_row[is_new]
    clean_parts, quarantine_parts, ledger = [], [], []
    for i, partition in enumerate(manifest):
        if i in reused:
            clean_part = accepted[partition["file"]]["clean"]
            quarantine_part = accepted[partition["file"]]["quarantine"]
        else:
            clean_part = cleaned.clean[new_partition[cleaned.kept] == i]
            quarantine_part = cleaned.quarantine[new_partition[~cleaned.kept] == i]
        clean_parts.append(clean_part)
        quarantine_parts.append(quarantine_part)
        ledger.append(
            partition | {"rows_clean": len(clean_part), "rows_quarantined": len(quarantine_part)}
        )
    clean = pd.concat(clean_parts, ignore_index=True)
    quarantine = pd.concat(quarantine_parts, ignore_index=True)

    write_parquet_atomic(clean, paths.CLEAN)
    write_parquet_atomic(quarantine, paths.QUARANTINE)
    write_json_atomic({"fingerprint": fingerprint, "partitions": ledger}, paths.ACCEPTED_PARTITIONS)
    write_json_atomic(drift.profile(clean, schema), reference_file)
    warned = {k: v for k, v in cleaned.drift.items() if v > cfg.drift_warn}
    report = {
        "passed": True,
        "schema": str(schema_path(params.data)),
        "schema_inferred": inferred,
        "partitions_total": len(manifest),
        "partitions_validated": len(manifest) - len(reused),
        "rows_in": len(raw),
        "rows_validated": int(is_new.sum()),
        "rows_clean": len(clean),
        "rows_quarantined": len(quarantine),
        "quarantined": reason_counts(quarantine),
        "repaired": cleaned.repaired,
        "pii_columns": {name: cfg.pii_policy for name in schema.pii},
        "drift": {
            "reference_rows": reference["rows"] if reference else 0,
            "max_psi": max(cleaned.drift.values(), default=0.0),
            "warnings": sorted(warned),
            "psi": cleaned.drift,
        },
    }
    write_json_atomic(report, paths.VALIDATE_METRICS)
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

    Curated ``pii: true`` flags are kept; everything else is inferred afresh, so review the
    diff before committing it.
    """
    params = load_params()
    raw = read_parquet(paths.RAW_SNAPSHOT)
    path = schema_path(params.data)
    curated = frozenset(load_schema(path).pii) if path.exists() else frozenset()
    cfg = params.validate_
    schema = infer_schema(
        raw, params.data, cfg.max_categories, cfg.range_margin, cfg.min_rows, pii=curated
    )
    save_schema(schema, path)
    log.warning("re-inferred %s from %s: review `git diff %s`", path, paths.RAW_SNAPSHOT, path)


if __name__ == "__main__":
    run_stage("validate", reinfer_schema if "--reinfer-schema" in sys.argv[1:] else main)
