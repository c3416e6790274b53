"""Score: raw rows in; each row's probability, label, model version and scoring time out.

    python -m pipelines.score --input data/landing --output data/scored/scores.parquet

The input is a file, a folder of partitions or an ``s3://`` prefix of CSV or Parquet files.
The model is ``models:/<register.model_name>@champion``, or ``--model-version N``, loaded as
its MLflow pyfunc: raw feature rows in, ``probability`` and ``label`` (at the model's own
threshold) out. Rows are first admitted against the schema logged with that model version
(``pipelines.admission``): a row that fails it is not scored but written to the rejects file
(``--rejects``; by default ``<output>.rejects.parquet``) with a ``reason``, as validate's
quarantine is.

Files are streamed in chunks of ``score.chunk_rows`` (or ``--chunk-rows``) and both outputs
are written chunk by chunk, then moved into place (``pipelines.chunks``), so memory stays
flat however many rows there are, and a killed run leaves the previous outputs or none. The
output holds the input's columns typed by the schema (PII and the label left out), then
``probability``, ``label``, ``model_version`` and ``scored_at`` (one UTC time per run).

Not a DVC stage: it scores data the training graph never sees, after deployment.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import paths, tracking
from pipelines.admission import admit
from pipelines.chunks import ParquetSink, parquet_rows, read_chunks
from pipelines.cleaning import REASON
from pipelines.config import load_params
from pipelines.errors import PipelineError, brief
from pipelines.schema import Schema, load_schema
from pipelines.sources import file_format_of, list_partitions, local_copy
from pipelines.stage import run_stage

log = logging.getLogger(__name__)

CHAMPION = "champion"
SCORE_COLUMNS = ("probability", "label", "model_version", "scored_at")
# Where register logs the schema it enforced, inside the model version's run.
SCHEMA_ARTIFACT = f"schema/{paths.ENFORCED_SCHEMA.name}"
LOG_EVERY_S = 10.0


@dataclass(frozen=True)
class ScoringModel:
    """A registered model version, loaded, with the schema it was trained under."""

    name: str
    version: int
    schema: Schema
    model: Any  # the pyfunc: predict(raw feature rows) -> DataFrame(probability, label)


@dataclass
class Tally:
    rows_in: int = 0
    scored: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)


def _load_model(uri: str) -> Any:
    """The served pyfunc at ``uri``; the one place scoring loads a model."""
    import mlflow

    return mlflow.pyfunc.load_model(uri)


def load_scoring_model(name: str, version: int | None) -> ScoringModel:
    """``name``'s champion, or its ``version``, with the schema logged in its run."""
    from mlflow.exceptions import MlflowException

    client = tracking.client()
    try:
        if version is None:
            held = client.get_model_version_by_alias(name, CHAMPION)
        else:
            held = client.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise tracking.mlflow_error(exc, f"reading registered model {name!r}") from exc
        which = f"no @{CHAMPION} version" if version is None else f"no version {version}"
        raise PipelineError(
            f"registered model {name!r} has {which} at {tracking.display_uri()}; register one "
            "(dvc repro) or pass --model-version"
        ) from exc
    uri = f"models:/{name}/{held.version}"
    schema = _version_schema(held.run_id)
    try:
        model = _load_model(uri)
    except Exception as exc:  # noqa: BLE001 - any load failure is the version's, say so
        raise PipelineError(f"{uri}: cannot load ({type(exc).__name__}: {brief(exc)})") from exc
    return ScoringModel(name, int(held.version), schema, model)


def _version_schema(run_id: str) -> Schema:
    """The schema register logged with the version's run; failing that, the local one."""
    from mlflow.exceptions import MlflowException

    import mlflow

    with tempfile.TemporaryDirectory(prefix="schema-") as scratch:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=SCHEMA_ARTIFACT, dst_path=scratch
            )
            return load_schema(Path(local))
        except (OSError, MlflowException) as exc:
            if not paths.ENFORCED_SCHEMA.exists():
                raise PipelineError(
                    f"run {run_id} holds no {SCHEMA_ARTIFACT} and {paths.ENFORCED_SCHEMA} is "
                    "missing: no schema to admit rows against"
                ) from exc
            log.warning(
                "run %s holds no %s (%s); admitting rows against %s",
                run_id,
                SCHEMA_ARTIFACT,
                brief(exc, 120),
                paths.ENFORCED_SCHEMA,
            )
            return load_schema(paths.ENFORCED_SCHEMA)


def score_rows(rows: pd.DataFrame, scoring: ScoringModel, scored_at: pd.Timestamp) -> pd.DataFrame:
    """Admitted ``rows`` with the model's probability and label, its version and the time.

    The label column, when the rows hold one, is left out: it is what the model predicts,
    and it would clash with ``label`` when the dataset calls it that."""
    scored = rows.drop(columns=[scoring.schema.target, *SCORE_COLUMNS], errors="ignore")
    if rows.empty:
        predictions = pd.DataFrame({"probability": [], "label": []})
    else:
        predictions = scoring.model.predict(rows[scoring.schema.feature_columns])
    if len(predictions) != len(rows):
        raise PipelineError(
            f"{scoring.name} v{scoring.version} returned {len(predictions)} predictions for "
            f"{len(rows)} rows"
        )
    scored["probability"] = predictions["probability"].to_numpy(dtype="float64")
    scored["label"] = predictions["label"].to_numpy(dtype="int64")
    scored["model_version"] = pd.Series(scoring.version, index=scored.index, dtype="int64")
    scored["scored_at"] = pd.Series(scored_at, index=scored.index, dtype="datetime64[us, UTC]")
    return scored


class Progress:
    """A tqdm bar when a person watches stderr, else a log line every ``LOG_EVERY_S``."""

    def __init__(self, total: int | None) -> None:
        from tqdm import tqdm

        self.total, self.done, self.rejected = total, 0, 0
        self.bar = tqdm(total=total, unit="rows", disable=not sys.stderr.isatty())
        self.last = time.monotonic()

    def update(self, rows: int, rejected: int) -> None:
        """``rows`` more read; ``rejected`` of all rows read so far."""
        self.done += rows
        self.rejected = rejected
        self.bar.update(rows)
        if self.bar.disable and time.monotonic() - self.last >= LOG_EVERY_S:
            self.last = time.monotonic()
            of = f"/{self.total}" if self.total else ""
            log.info("read %d%s rows, %d rejected", self.done, of, self.rejected)

    def close(self) -> None:
        self.bar.close()


def score_source(
    source: str,
    scoring: ScoringModel,
    sinks: tuple[ParquetSink, ParquetSink],
    *,
    chunk_rows: int,
    scored_at: pd.Timestamp,
    file_format: str = "auto",
) -> Tally:
    """Admit and score every row under ``source``, chunk by chunk, into the two sinks."""
    files = list(list_partitions(source, file_format, key="--input"))
    log.info(
        "scoring %d file(s) from %s with %s v%s", len(files), source, scoring.name, scoring.version
    )
    progress = Progress(_total_rows(files, file_format))
    tally = Tally()
    try:
        for name in files:
            with local_copy(name) as path:
                fmt = file_format_of(name, file_format)
                for chunk in read_chunks(path, name, fmt, chunk_rows):
                    _score_chunk(name, chunk, scoring, sinks, scored_at, tally)
                    progress.update(len(chunk), tally.rejected)
    finally:
        progress.close()
    if tally.rows_in == 0:
        raise PipelineError(f"--input: {source} holds no rows")
    return tally


def _score_chunk(
    name: str,
    chunk: pd.DataFrame,
    scoring: ScoringModel,
    sinks: tuple[ParquetSink, ParquetSink],
    scored_at: pd.Timestamp,
    tally: Tally,
) -> None:
    admitted = admit(chunk, scoring.schema, name)
    scored = score_rows(admitted.rows, scoring, scored_at)
    try:
        sinks[0].write(scored)
        sinks[1].write(admitted.rejects)
    except PipelineError as exc:
        raise PipelineError(f"{name}: {exc}") from exc
    tally.rows_in += len(chunk)
    tally.scored += len(scored)
    tally.rejected += len(admitted.rejects)
    tally.reasons.update(admitted.rejects[REASON].tolist())


def _total_rows(files: list[str], file_format: str) -> int | None:
    """Rows to read, when every file is a local Parquet file (its footer says); else None."""
    if any(
        name.startswith("s3://") or file_format_of(name, file_format) != "parquet" for name in files
    ):
        return None
    return sum(parquet_rows(Path(name)) for name in files)


def default_rejects(output: Path) -> Path:
    return output.with_name(f"{output.stem}.rejects.parquet")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.score",
        description="Score raw rows with the registered champion (or a given version).",
    )
    parser.add_argument("--input", required=True, help="a file, a folder or s3://bucket/prefix")
    parser.add_argument("--output", required=True, type=Path, help="the scored rows (Parquet)")
    parser.add_argument("--model-version", type=int, help="default: the @champion version")
    parser.add_argument("--rejects", type=Path, help="default: <output>.rejects.parquet")
    parser.add_argument("--chunk-rows", type=int, help="default: score.chunk_rows")
    parser.add_argument("--file-format", choices=["auto", "csv", "parquet"], default="auto")
    parser.add_argument("--model-name", help="default: register.model_name")
    args = parser.parse_args(argv)
    if args.chunk_rows is not None and args.chunk_rows < 1:
        parser.error("--chunk-rows must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    params = load_params()
    rejects = args.rejects or default_rejects(args.output)
    scoring = load_scoring_model(args.model_name or params.register_.model_name, args.model_version)
    with ParquetSink(args.output) as scored, ParquetSink(rejects) as rejected:
        tally = score_source(
            args.input,
            scoring,
            (scored, rejected),
            file_format=args.file_format,
            chunk_rows=args.chunk_rows or params.score.chunk_rows,
            scored_at=pd.Timestamp.now(tz="UTC"),
        )
    log.info(
        "%s v%s scored %d of %d rows into %s; %d rejected into %s %s",
        scoring.name,
        scoring.version,
        tally.scored,
        tally.rows_in,
        args.output,
        tally.rejected,
        rejects,
        dict(sorted(tally.reasons.items())),
    )


if __name__ == "__main__":
    run_stage("score", main, record_failure=False)
