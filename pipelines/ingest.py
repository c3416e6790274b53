"""Ingest: read the source (file, folder of partitions, or s3:// prefix) and snapshot it.

CSV and Parquet are read; partitions may list their columns in any order but must share
one column set. The snapshot is a single Parquet file, the versioned raw input of the run. Personal columns
(by name, by the dataset's schema, or by their values) are pseudonymised before it is written
(``pipelines.personal_data``), so no clear personal datum is ever persisted or pushed.
S3 uses boto3's standard credential chain; ``AWS_ENDPOINT_URL`` selects an S3-compatible
store.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import PurePosixPath

import pandas as pd
import pyarrow

from pipelines import paths, personal_data
from pipelines.config import DataParams, IngestParams, load_params
from pipelines.datasets import schema_path
from pipelines.errors import PipelineError
from pipelines.io import write_json_atomic, write_parquet_atomic
from pipelines.reports import stage_headline, write_results
from pipelines.schema import load_schema
from pipelines.sources import READABLE_SUFFIXES, SourceFile, list_source_files
from pipelines.stage import run_stage

log = logging.getLogger(__name__)


def read_source_file(source_file: SourceFile, file_format: str) -> pd.DataFrame:
    fmt = file_format
    if fmt == "auto":
        fmt = READABLE_SUFFIXES.get(PurePosixPath(source_file.name).suffix.lower(), "csv")
    if not source_file.payload:
        raise PipelineError(f"{source_file.name}: file is empty")
    try:
        if fmt == "csv":
            frame = pd.read_csv(io.BytesIO(source_file.payload), encoding="utf-8")
        else:
            frame = pd.read_parquet(io.BytesIO(source_file.payload))
    except UnicodeDecodeError as exc:
        raise PipelineError(
            f"{source_file.name}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise PipelineError(f"{source_file.name}: no columns to read") from exc
    except (pd.errors.ParserError, pyarrow.ArrowException, OSError, ValueError) as exc:
        raise PipelineError(f"{source_file.name}: cannot parse as {fmt}: {exc}") from exc
    if frame.empty:
        raise PipelineError(f"{source_file.name}: has a header but no rows")
    return frame


def combine(frames: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """Concatenate partitions, aligning columns by name; all must share one column set."""
    first_name, first = frames[0]
    columns = list(first.columns)
    aligned = []
    for name, frame in frames:
        if set(frame.columns) != set(columns):
            missing = sorted(set(columns) - set(frame.columns))
            extra = sorted(set(frame.columns) - set(columns))
            raise PipelineError(
                f"{name}: columns differ from {first_name} (missing {missing}, extra {extra})"
            )
        aligned.append(frame[columns])
    return pd.concat(aligned, ignore_index=True) if len(aligned) > 1 else aligned[0]


def ingest(data: DataParams, cfg: IngestParams) -> tuple[pd.DataFrame, dict]:
    """The snapshot (partitions concatenated in name order) and a report with its manifest.

    ``report["partitions"]`` lists each file with its row count and content hash, in snapshot
    order, so that validate can tell which rows came from partitions it already accepted.
    """
    files = list_source_files(data.source, cfg.file_format)
    log.info("reading %d file(s) from %s", len(files), data.source)
    frames = []
    for index, source_file in enumerate(files, start=1):
        frames.append((source_file.name, read_source_file(source_file, cfg.file_format)))
        if index % 50 == 0 or index == len(files):
            log.info("read %d/%d files", index, len(files))
    snapshot = combine(frames)
    if data.target not in snapshot.columns:
        raise PipelineError(
            f"data.target: column {data.target!r} not in {data.source} (columns: "
            f"{list(snapshot.columns)}){_delimiter_hint(snapshot)}"
        )
    snapshot, found = pseudonymised(snapshot, data)
    report = {
        "rows": len(snapshot),
        "columns": snapshot.shape[1],
        "files": len(files),
        "bytes": sum(len(f.payload) for f in files),
        "pii_columns": found,
        "partitions": [
            {
                "file": source_file.name,
                "rows": len(frame),
                "sha256": hashlib.sha256(source_file.payload).hexdigest(),
            }
            for source_file, (_, frame) in zip(files, frames, strict=True)
        ],
    }
    return snapshot, report


def pseudonymised(snapshot: pd.DataFrame, data: DataParams) -> tuple[pd.DataFrame, dict]:
    """The snapshot with its personal columns pseudonymised, and why each one was.

    The dataset's schema is read for its ``pii: true`` flags but is no DVC dependency (it is
    validate's output: a cycle); validate hashes flagged columns itself meanwhile."""
    path = schema_path(data)
    flagged = load_schema(path).pii if path.exists() else []
    found = personal_data.personal_columns(snapshot, flagged, exclude=[data.target])
    if not found:
        return snapshot, found
    for name, why in found.items():
        log.warning("column %r holds personal data (%s): pseudonymised at ingest", name, why)
    key = personal_data.pseudonym_key()
    return personal_data.pseudonymise(snapshot, found, key), found


def _delimiter_hint(snapshot: pd.DataFrame) -> str:
    """A hint when a CSV was read as one column: its header holds another delimiter."""
    if len(snapshot.columns) != 1:
        return ""
    header = str(snapshot.columns[0])
    for name, delimiter in (("semicolon", ";"), ("tab", "\t"), ("pipe", "|")):
        if delimiter in header:
            return f"; one column whose name holds {name}s: CSV sources must be comma-separated"
    return ""


def main() -> None:
    params = load_params()
    snapshot, report = ingest(params.data, params.ingest)
    write_parquet_atomic(snapshot, paths.RAW_SNAPSHOT)
    write_json_atomic(report.pop("partitions"), paths.RAW_MANIFEST)
    metrics = stage_headline("ingest", rows=report["rows"])
    write_results(report, paths.INGEST_REPORT, metrics, paths.INGEST_METRICS)
    log.info(
        "snapshot %s: %d rows x %d columns", paths.RAW_SNAPSHOT, report["rows"], report["columns"]
    )


if __name__ == "__main__":
    run_stage("ingest", main)
