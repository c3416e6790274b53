"""The critical checks: Great Expectations suites built from the schema, run in one checkpoint.

Two suites: ``critical`` (columns, row count, the label's values and positive share; any
failure stops the run) and ``row_level`` (ranges, categories, nulls, unique ids; reported in
Data Docs, then repaired or quarantined by ``pipelines.cleaning``). Both run in one checkpoint
and get one Data Docs build. Each critical failure becomes one message that names its culprit:
the column, and what was observed against what the schema expects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.cleaning import Codes
from pipelines.data_docs import build_data_docs
from pipelines.schema import Schema, canonical_label


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


def build_suites(schema: Schema) -> tuple[Any, Any]:
    """The critical suite (stops the run) and the row-level suite (reported, then cleaned)."""
    import great_expectations as gx

    expect = gx.expectations
    critical = [
        expect.ExpectTableColumnsToMatchSet(column_set=list(schema.columns), exact_match=True),
        expect.ExpectTableRowCountToBeBetween(min_value=schema.min_rows, max_value=schema.max_rows),
        # Positive share as "mostly" bounds on the label column; nulls are left to the checks
        # below.
        expect.ExpectColumnValuesToBeInSet(
            column=schema.target,
            value_set=[schema.positive_label],
            mostly=schema.min_positive_share,
            meta={"bound": f"positive share below min_positive_share={schema.min_positive_share}"},
        ),
        expect.ExpectColumnValuesToNotBeInSet(
            column=schema.target,
            value_set=[schema.positive_label],
            mostly=round(1 - schema.max_positive_share, 6),
            meta={"bound": f"positive share above max_positive_share={schema.max_positive_share}"},
        ),
        expect.ExpectColumnValuesToNotBeNull(column=schema.target),
        expect.ExpectColumnValuesToBeInSet(column=schema.target, value_set=schema.label_values),
        expect.ExpectColumnDistinctValuesToContainSet(
            column=schema.target, value_set=schema.label_values
        ),
    ]
    row_level: list[Any] = []
    for name, col in schema.columns.items():
        if col.role == "numeric":
            row_level.append(
                expect.ExpectColumnValuesToBeBetween(
                    column=name, min_value=col.min, max_value=col.max
                )
            )
        if col.role == "categorical":
            row_level.append(
                expect.ExpectColumnValuesToBeInSet(column=name, value_set=col.categories or [])
            )
        if col.role in ("numeric", "categorical") and not col.nullable:
            row_level.append(expect.ExpectColumnValuesToNotBeNull(column=name))
        if col.role == "id":
            row_level.append(expect.ExpectColumnValuesToBeUnique(column=name))
    # Passed whole, not through ``add_expectation``, which compares each new expectation with
    # every one before it (pydantic dumps of both: 40 expectations, ~800 comparisons, ~50 ms)
    # to drop repeats; these lists hold none by construction.
    return (
        gx.ExpectationSuite(name="critical", expectations=critical),
        gx.ExpectationSuite(name="row_level", expectations=row_level),
    )


def _context(docs_dir: Path) -> Any:
    """An ephemeral GX context whose one Data Docs site is ``docs_dir``."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

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
    return context


def _checkpoint(context: Any, schema: Schema) -> Any:
    """One checkpoint running both suites on the whole frame passed as a batch parameter."""
    import great_expectations as gx

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
    return context.checkpoints.add(
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


def _as_checked(frame: pd.DataFrame, schema: Schema, codes: Codes) -> pd.DataFrame:
    """The frame GX sees: canonical labels, and text columns as categories."""
    labelled = frame.copy(deep=False)  # copy-on-write: replacing columns leaves the input as it is
    if schema.target in labelled.columns:
        labelled[schema.target] = _canonical_categories(labelled[schema.target])
    # Great Expectations' pandas engine copies the whole frame, filtered, for every metric of
    # an expectation on a column with nulls; text as categories makes those copies take
    # integer codes instead of strings (1M rows x 30 columns: 64 ms a copy instead of 183 ms).
    # The categories come from the codes the cleaning uses too: the text is hashed once and
    # never sorted.
    for name, (column_codes, distinct) in codes.items():
        if name != schema.target and (
            pd.api.types.is_string_dtype(frame[name]) or frame[name].dtype == object
        ):
            # The codes index ``distinct`` by construction: no need to check a million of them.
            dtype = _unique_categories(distinct)
            labelled[name] = pd.Categorical.from_codes(column_codes, dtype=dtype, validate=False)
    return labelled


def _unique_categories(distinct: pd.Index) -> pd.CategoricalDtype:
    """``pd.CategoricalDtype(distinct)`` for values known to be distinct and not null.

    The public constructor checks that by hashing every value (0.1 s for a million ids, which
    nothing reads later); pandas' own fast path skips the check. Should a pandas release drop
    that private method, the public constructor is used.
    """
    fastpath = getattr(pd.CategoricalDtype, "_from_fastpath", None)
    if fastpath is None:
        return pd.CategoricalDtype(distinct)
    return fastpath(distinct, ordered=False)


def _canonical_categories(labels: pd.Series) -> pd.Series:
    """``canonical_labels(labels).astype("category")``, canonicalising each distinct value once.

    Building the categorical from codes skips hashing a million label strings again.
    """
    codes, distinct = pd.factorize(labels, use_na_sentinel=True)
    canonical = [canonical_label(value) for value in distinct]
    categories = pd.Index(sorted(set(canonical)))
    recoded = np.append(categories.get_indexer(canonical), -1)  # code -1 (null) stays null
    dtype = pd.CategoricalDtype(categories)
    values = pd.Categorical.from_codes(recoded[codes], dtype=dtype, validate=False)
    return pd.Series(values, index=labels.index, name=labels.name)


def run_expectations(
    frame: pd.DataFrame, schema: Schema, docs_dir: Path, codes: Codes
) -> list[str]:
    """Run both suites in one checkpoint, build Data Docs into ``docs_dir``; return critical failures.

    ``codes`` is ``pipelines.cleaning.text_codes(frame)``.
    """
    context = _context(docs_dir)
    checkpoint = _checkpoint(context, schema)
    result = checkpoint.run(batch_parameters={"dataframe": _as_checked(frame, schema, codes)})
    build_data_docs(context, result, "local")
    return [
        describe_failure(outcome)
        for validation in result.run_results.values()
        if validation.suite_name == "critical"
        for outcome in validation.results
        if not outcome.success
    ]


def describe_failure(outcome: Any) -> str:
    """One line naming the culprit of a failed expectation: its column and what was observed."""
    config = outcome.expectation_config
    where = f"column {config.kwargs['column']!r}: " if config.kwargs.get("column") else ""
    result = outcome.result or {}
    error = _exception_message(outcome)
    if config.meta and "bound" in config.meta:
        return f"{where}{config.meta['bound']} ({_observed_share(config.type, result, error)})"
    if config.type == "expect_table_columns_to_match_set" and not error:
        detail = _column_mismatch(config.kwargs.get("column_set"), result.get("observed_value"))
    elif config.type == "expect_table_row_count_to_be_between" and not error:
        detail = _row_count(config.kwargs, result.get("observed_value"))
    elif config.type == "expect_column_distinct_values_to_contain_set" and not error:
        absent = sorted(map(str, result.get("partial_missing_list") or []))
        detail = f"no row has the value(s) {absent}"
    else:
        observed = result.get("observed_value")
        unexpected = result.get("partial_unexpected_list")
        detail = f"observed {observed}" if observed is not None else ""
        if unexpected:
            detail = f"{result.get('unexpected_count')} bad values such as {unexpected[:5]}"
        if error:
            detail = error
    return f"{where}{config.type} failed ({detail})".replace("()", "").strip()


def _exception_message(outcome: Any) -> str:
    """The first line of the error an expectation raised, or "" when it ran.

    GX 1.x reports a failed metric as a mapping from the metric's id to its exception info,
    and an expectation's own failure as that info directly.
    """
    info = outcome.exception_info or {}
    raised = [info] if "raised_exception" in info else list(info.values())
    for entry in raised:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            return (entry.get("exception_message") or "raised an exception").splitlines()[0]
    return ""


def _observed_share(kind: str, result: dict, error: str) -> str:
    # GX reports the share of non-null values outside the set; for the lower bound (values
    # expected *in* the positive set) the positive share is its complement.
    share = result.get("unexpected_percent")
    if share is None:
        return error or "not measured: the label has no non-null value"
    if kind == "expect_column_values_to_be_in_set":
        share = 100 - share
    return f"observed {share:.3f}%"


def _column_mismatch(expected: list[str] | None, observed: list[str] | None) -> str:
    if observed is None:
        return "no columns observed"
    expected, observed = list(expected or []), list(observed)
    missing = [name for name in expected if name not in observed]
    extra = [name for name in observed if name not in expected]
    parts = [f"missing {missing}"] if missing else []
    parts += [f"extra {extra}"] if extra else []
    return "; ".join(parts) or f"observed {observed}"


def _row_count(kwargs: dict, observed: int | None) -> str:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    bounds = " and ".join(
        [f"at least {low}"] * (low is not None) + [f"at most {high}"] * (high is not None)
    )
    return f"observed {observed} rows, the schema allows {bounds or 'any number'}"
