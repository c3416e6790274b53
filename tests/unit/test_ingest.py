import pytest

from pipelines.config import DataParams, IngestParams
from pipelines.errors import PipelineError
from pipelines.ingest import ingest

AUTO = IngestParams(file_format="auto")


def params(source, target="label"):
    return DataParams(source=str(source), target=target, positive_label=1)


def test_folder_of_mixed_partitions_with_any_column_order(tmp_path, frame):
    frame.iloc[:100].to_csv(tmp_path / "a.csv", index=False)
    frame.iloc[100:250][list(reversed(frame.columns))].to_parquet(tmp_path / "b.parquet")
    sub = tmp_path / "day=2"
    sub.mkdir()
    frame.iloc[250:].to_parquet(sub / "c.parquet")
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / "notes.txt").write_text("ignored")
    snapshot, report = ingest(params(tmp_path), AUTO)
    assert list(snapshot.columns) == list(frame.columns)
    assert len(snapshot) == len(frame) and report["files"] == 3
    assert snapshot["amount"].sum() == pytest.approx(frame["amount"].sum())


def test_single_file_and_forced_format(tmp_path, frame):
    path = tmp_path / "data.txt"
    frame.to_csv(path, index=False)
    snapshot, _ = ingest(params(path), IngestParams(file_format="csv"))
    assert len(snapshot) == len(frame)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"a,b,label\n", "header but no rows"),
        ("amount,label\n1,caf\xe9\n".encode("latin-1"), "not UTF-8"),
    ],
)
def test_bad_csv_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(PipelineError, match=message) as error:
        ingest(params(path), AUTO)
    assert "bad.csv" in str(error.value)


def test_corrupt_parquet_names_the_file(tmp_path, frame):
    path = tmp_path / "part.parquet"
    frame.to_parquet(path)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(PipelineError, match="part.parquet: cannot parse"):
        ingest(params(path), AUTO)


def test_partitions_with_different_columns(tmp_path, frame):
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.drop(columns="age").to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(PipelineError, match=r"b.csv: columns differ .*missing \['age'\]"):
        ingest(params(tmp_path), AUTO)


def test_missing_source_empty_folder_and_missing_target(tmp_path, frame):
    with pytest.raises(PipelineError, match="data.source: .* does not exist"):
        ingest(params(tmp_path / "nope"), AUTO)
    with pytest.raises(PipelineError, match="no CSV or Parquet"):
        ingest(params(tmp_path), AUTO)
    frame.to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(PipelineError, match="data.target: column 'Class'"):
        ingest(params(tmp_path, target="Class"), AUTO)
