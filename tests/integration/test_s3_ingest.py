"""Ingest from an s3:// prefix on a real S3-compatible store (SeaweedFS on 127.0.0.1)."""

import io

import pandas as pd
import pytest

from pipelines.config import DataParams, IngestParams
from pipelines.errors import PipelineError
from pipelines.ingest import ingest
from tests.conftest import make_frame
from tests.integration.conftest import make_repo_copy
from tests.integration.services import s3_client, s3_env, seaweedfs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        yield endpoint


@pytest.fixture
def s3_environment(s3_endpoint, monkeypatch):
    for key, value in s3_env(s3_endpoint).items():
        monkeypatch.setenv(key, value)
    return s3_endpoint


def upload_partitions(endpoint: str, bucket: str, frame: pd.DataFrame) -> None:
    client = s3_client(endpoint)
    client.create_bucket(Bucket=bucket)
    csv = frame.iloc[:150].to_csv(index=False).encode()
    parquet = io.BytesIO()
    frame.iloc[150:].to_parquet(parquet, index=False)
    client.put_object(Bucket=bucket, Key="landing/day=1/part.csv", Body=csv)
    client.put_object(Bucket=bucket, Key="landing/day=2/part.parquet", Body=parquet.getvalue())
    client.put_object(Bucket=bucket, Key="landing/_SUCCESS", Body=b"")
    client.put_object(Bucket=bucket, Key="other/ignored.csv", Body=csv)


def test_reads_every_partition_under_the_prefix(s3_environment):
    frame = make_frame(n=300)
    upload_partitions(s3_environment, "raw", frame)
    snapshot, report = ingest(
        DataParams(source="s3://raw/landing", target="label", positive_label=1),
        IngestParams(file_format="auto"),
    )
    assert report["files"] == 2 and len(snapshot) == 300
    assert snapshot["amount"].sum() == pytest.approx(frame["amount"].sum())


def test_missing_bucket_and_empty_prefix_are_named(s3_environment):
    with pytest.raises(PipelineError, match="data.source: cannot read s3://no-such-bucket/x"):
        ingest(
            DataParams(source="s3://no-such-bucket/x", target="label", positive_label=1),
            IngestParams(file_format="auto"),
        )
    s3_client(s3_environment).create_bucket(Bucket="empty")
    with pytest.raises(PipelineError, match="s3://empty/nothing holds no CSV or Parquet"):
        ingest(
            DataParams(source="s3://empty/nothing", target="label", positive_label=1),
            IngestParams(file_format="auto"),
        )


def test_stage_entry_point_snapshots_an_s3_source(s3_environment, tmp_path):
    upload_partitions(s3_environment, "entry", make_frame(n=300))
    repo = make_repo_copy(tmp_path / "repo")
    repo.set_params(
        {"data": {"source": "s3://entry/landing", "target": "label", "positive_label": 1}}
    )
    result = repo.python("-m", "pipelines.ingest", env_extra=s3_env(s3_environment))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(pd.read_parquet(repo.root / "data/raw/snapshot.parquet")) == 300
    assert "test-secret-key" not in result.output


def test_batch_scoring_streams_the_objects_under_a_prefix(s3_environment, tmp_path):
    """pipelines.score lists the prefix as ingest does, then downloads one object at a time."""
    import numpy as np

    from pipelines import score
    from pipelines.chunks import ParquetSink
    from pipelines.schema import infer_schema

    class Stub:
        def predict(self, rows):
            return pd.DataFrame({"probability": np.full(len(rows), 0.5), "label": 1})

    frame = make_frame(n=300)
    upload_partitions(s3_environment, "scoring", frame)
    data = DataParams(source="s3://scoring/landing", target="label", positive_label=1)
    schema = infer_schema(frame, data, 10, 3.0, 10)
    scoring = score.ScoringModel("stub", 1, schema, Stub())
    with ParquetSink(tmp_path / "s.parquet") as out, ParquetSink(tmp_path / "r.parquet") as bad:
        tally = score.score_source(
            data.source, scoring, (out, bad), chunk_rows=100, scored_at=pd.Timestamp.now(tz="UTC")
        )
    assert tally.rows_in == 300 == tally.scored + tally.rejected
    assert len(pd.read_parquet(tmp_path / "s.parquet")) == tally.scored
