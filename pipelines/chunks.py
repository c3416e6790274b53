"""Tables too large for memory: read in chunks of rows, written chunk by chunk.

CSV is read with pandas' chunked reader and Parquet batch by batch with pyarrow, so memory
holds one chunk (for Parquet, at most one row group) whatever the file's size. A
``ParquetSink`` appends chunks to a temporary sibling of its target and moves it into place
only when every chunk is written, so a killed run leaves the previous file or none.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.errors import PipelineError
from pipelines.io import atomic_path


def read_chunks(path: Path, name: str, file_format: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The rows of the CSV or Parquet file at ``path`` (called ``name`` in errors), in
    chunks of at most ``chunk_rows``."""
    try:
        if file_format == "csv":
            with pd.read_csv(path, chunksize=chunk_rows, encoding="utf-8") as reader:
                yield from reader
        else:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except pd.errors.EmptyDataError as exc:
        raise PipelineError(f"{name}: no columns to read") from exc
    except (pd.errors.ParserError, pa.ArrowException, OSError, ValueError) as exc:
        raise PipelineError(f"{name}: cannot parse as {file_format}: {exc}") from exc


def parquet_rows(path: Path) -> int:
    """Rows of a Parquet file, from its footer."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise PipelineError(f"{path}: cannot parse as parquet: {exc}") from exc


class ParquetSink:
    """Chunks appended to one Parquet file, which appears at ``target`` on a clean exit.

    The first chunk holding rows fixes the file's columns and types (an all-null column is
    text); later chunks are converted to them, and a chunk that cannot be is an error naming
    ``target``. With no rows at all, the file holds the last chunk's columns and no rows.
    """

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.rows = 0
        self._stack = contextlib.ExitStack()
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._empty: pd.DataFrame | None = None

    def __enter__(self) -> ParquetSink:
        self._tmp = self._stack.enter_context(atomic_path(self.target))
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty and self._writer is None:
            self._empty = frame
            return
        if self._writer is None or self._schema is None:
            self._schema = _text_for_nulls(_arrow(frame).schema)
            self._writer = pq.ParquetWriter(self._tmp, self._schema)
        schema = self._schema
        try:
            table = _arrow(frame[schema.names], schema)
        except (pa.ArrowException, KeyError, ValueError) as exc:
            raise PipelineError(
                f"{self.target}: a chunk does not match the columns and types of the first "
                f"({' '.join(str(exc).split())[:300]})"
            ) from exc
        self._writer.write_table(table)
        self.rows += len(frame)

    def __exit__(self, kind, value, traceback) -> bool | None:
        try:
            if self._writer is not None:
                self._writer.close()
            elif kind is None:
                self._write_empty()
        except BaseException:
            self._stack.__exit__(*sys.exc_info())  # removes the temporary file
            raise
        return self._stack.__exit__(kind, value, traceback)

    def _write_empty(self) -> None:
        if self._empty is None:
            raise PipelineError(f"{self.target}: no chunk was written, not even an empty one")
        table = _arrow(self._empty)
        pq.write_table(table.cast(_text_for_nulls(table.schema)), self._tmp)


def _text_for_nulls(schema: pa.Schema) -> pa.Schema:
    """``schema`` with its null-typed columns (all-null in a first chunk) as text."""
    return pa.schema(
        [
            field.with_type(pa.string()) if pa.types.is_null(field.type) else field
            for field in schema
        ]
    )


def _arrow(frame: pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    with warnings.catch_warnings():
        # pyarrow 25 reads a UTC time column through pandas' deprecated Series.values.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
