"""The landing source rebuilt from a restored snapshot (pipelines.checkout), and the CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from pipelines import paths, registry
from pipelines.checkout import RESTORED_SOURCE, restore_source
from pipelines.config import DataParams, IngestParams
from pipelines.ingest import ingest


def restored_tree(root, files: list[str], frame: pd.DataFrame, source: str) -> None:
    (root / paths.RAW_SNAPSHOT).parent.mkdir(parents=True)
    frame.to_parquet(root / paths.RAW_SNAPSHOT, index=False)
    rows = [len(frame) // len(files)] * len(files)
    rows[-1] += len(frame) - sum(rows)
    manifest = [{"file": f, "rows": r, "sha256": "x"} for f, r in zip(files, rows, strict=True)]
    (root / paths.RAW_MANIFEST).write_text(json.dumps(manifest))
    file_format = "csv" if files[0].endswith(".csv") else "parquet"
    params = {"data": {"source": source}, "ingest": {"file_format": file_format}}
    (root / paths.PARAMS).write_text(yaml.safe_dump(params))


@pytest.mark.parametrize(
    ("files", "source", "restored"),
    [
        (["data/landing/a.parquet", "data/landing/b.parquet"], "data/landing", "data/landing"),
        (["exports/default.csv"], "exports/default.csv", str(RESTORED_SOURCE)),
        (["s3://bucket/p/a.parquet", "s3://bucket/p/b.parquet"], "s3://bucket/p", None),
    ],
)
def test_ingest_of_the_rebuilt_source_gives_the_snapshot_back(
    tmp_path, monkeypatch, frame, files, source, restored
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_PII_KEY", "k")
    restored_tree(tmp_path, files, frame, source)
    folder = restore_source(tmp_path)
    params = yaml.safe_load(paths.PARAMS.read_text())
    assert params["data"]["source"] == (restored or str(RESTORED_SOURCE))
    assert folder == tmp_path / params["data"]["source"]
    data = DataParams(source=params["data"]["source"], target="label", positive_label=1)
    snapshot, _ = ingest(data, IngestParams(file_format=params["ingest"]["file_format"]))
    pd.testing.assert_frame_equal(snapshot, frame)


def test_checkout_needs_a_version_and_only_checkout_takes_one(capsys):
    for argv in (["checkout"], ["history", "3"]):
        with pytest.raises(SystemExit):
            registry.main(argv)
    assert "a version is given with checkout" in capsys.readouterr().err
