"""Where a source's files are: a file, a folder of partitions, or an ``s3://`` prefix.

CSV and Parquet files are listed, sorted by name so that whatever reads them is
deterministic; hidden files (``.``, ``_``: ``_SUCCESS`` markers) are skipped. S3 uses
boto3's standard credential chain; ``AWS_ENDPOINT_URL`` selects an S3-compatible store.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pipelines.errors import PipelineError

READABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class SourceFile:
    name: str
    payload: bytes


def list_source_files(source: str, file_format: str) -> list[SourceFile]:
    """Every readable file under ``source``, sorted by name so the snapshot is deterministic."""
    if source.startswith("s3://"):
        client, bucket, objects = _s3_objects(source, file_format)
        try:
            return [
                SourceFile(
                    f"s3://{bucket}/{obj['Key']}",
                    client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read(),
                )
                for obj in objects
            ]
        except Exception as exc:  # botocore raises many types; the message is what matters
            raise PipelineError(f"data.source: cannot read {source}: {exc}") from exc
    return [SourceFile(str(p), p.read_bytes()) for p in _local_files(source, file_format)]


def list_partitions(source: str, file_format: str, key: str = "data.source") -> dict[str, str]:
    """Every readable file under ``source`` with a version stamp, without reading contents.

    The stamp is the S3 ETag, or a local file's size and modification time: cheap enough for
    a scheduler to poll, and it changes whenever a partition is added or rewritten. Errors
    name ``key``, where the source was given.
    """
    if source.startswith("s3://"):
        _, bucket, objects = _s3_objects(source, file_format, key)
        return {f"s3://{bucket}/{obj['Key']}": obj["ETag"].strip('"') for obj in objects}
    stamps = {}
    for path in _local_files(source, file_format, key):
        stat = path.stat()
        stamps[str(path)] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return stamps


def _local_files(source: str, file_format: str, key: str = "data.source") -> list[Path]:
    path = Path(source)
    if not path.exists():
        raise PipelineError(f"{key}: {source} does not exist")
    if path.is_file():
        return [path]
    found = sorted(p for p in path.rglob("*") if p.is_file() and _wanted(p.name, file_format))
    if not found:
        raise PipelineError(f"{key}: {source} holds no CSV or Parquet files")
    return found


def _wanted(name: str, file_format: str) -> bool:
    if PurePosixPath(name).name.startswith((".", "_")):
        return False
    suffix_format = READABLE_SUFFIXES.get(PurePosixPath(name).suffix.lower())
    return suffix_format is not None and file_format in ("auto", suffix_format)


def _s3_objects(
    source: str, file_format: str, key: str = "data.source"
) -> tuple[Any, str, list[dict]]:
    """The S3 client, the bucket and the readable objects under the prefix, sorted by key."""
    import boto3  # imported lazily: only s3:// sources need it

    bucket, _, prefix = source.removeprefix("s3://").partition("/")
    if not bucket:
        raise PipelineError(f"{key}: {source} names no bucket")
    client = boto3.client("s3")
    objects = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            objects += [obj for obj in page.get("Contents", []) if _wanted(obj["Key"], file_format)]
    except Exception as exc:  # botocore raises many types; the message is what matters
        raise PipelineError(f"{key}: cannot read {source}: {exc}") from exc
    if not objects:
        raise PipelineError(f"{key}: {source} holds no CSV or Parquet objects")
    return client, bucket, sorted(objects, key=lambda obj: obj["Key"])


def file_format_of(name: str, file_format: str) -> str:
    """``csv`` or ``parquet``: as forced, or by the name's extension under ``auto``."""
    if file_format != "auto":
        return file_format
    return READABLE_SUFFIXES.get(PurePosixPath(name).suffix.lower(), "csv")


@contextlib.contextmanager
def local_copy(name: str) -> Iterator[Path]:
    """A listed file as a local path: itself, or an S3 object downloaded to a temporary file,
    so that a reader can stream it in chunks rather than hold its bytes in memory."""
    if not name.startswith("s3://"):
        yield Path(name)
        return
    import boto3  # imported lazily: only s3:// sources need it

    bucket, _, key = name.removeprefix("s3://").partition("/")
    with tempfile.TemporaryDirectory(prefix="source-") as scratch:
        target = Path(scratch) / PurePosixPath(key).name
        try:
            boto3.client("s3").download_file(bucket, key, str(target))
        except Exception as exc:  # botocore raises many types; the message is what matters
            raise PipelineError(f"{name}: cannot download: {exc}") from exc
        yield target
