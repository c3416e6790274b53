"""Batch scoring on tiny frames: each row scored or rejected with its reason, the same scores
whatever the chunk size, typed outputs, and one-line errors for bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines import score
from pipelines.admission import admit
from pipelines.chunks import ParquetSink
from pipelines.errors import PipelineError
from pipelines.schema import ColumnSchema

SCORED_AT = pd.Timestamp("2026-12-03T12:00:00Z")


class FakePyfunc:
    """The served pyfunc's interface: raw feature rows in, probability and label out."""

    def __init__(self, features: list[str]) -> None:
        self.features = features
        self.calls = 0

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        assert list(rows.columns) == self.features
        self.calls += 1
        probability = 1 / (1 + np.exp(-(rows["amount"].to_numpy() - 20) / 10))
        return pd.DataFrame({"probability": probability, "label": (probability >= 0.5) * 1})


@pytest.fixture
def scoring(schema):
    return score.ScoringModel("fake", 3, schema, FakePyfunc(schema.feature_columns))


def test_each_bad_cell_rejects_its_row_with_the_first_reason(frame, schema):
    rows = frame.head(6).astype({"amount": object, "color": object}).drop(columns="label")
    rows.loc[0, "amount"] = "twelve"
    rows.loc[1, "amount"] = None
    rows.loc[2, "amount"] = 1e9
    rows.loc[3, "color"] = "purple"
    rows.loc[4, ["amount", "color"]] = ["x", "purple"]  # the first column's reason wins
    admitted = admit(rows, schema, "part.csv")
    assert admitted.rejects["reason"].tolist() == [
        "wrong_type:amount",
        "null:amount",
        "out_of_range:amount",
        "unseen_category:color",
        "wrong_type:amount",
    ]
    assert admitted.rejects["amount"].tolist()[:1] == ["twelve"]  # the raw cell, as text
    assert admitted.rows["row_id"].tolist() == [rows.loc[5, "row_id"]]
    assert admitted.rows["amount"].dtype == "float64"


def test_nullable_features_are_admitted_and_pii_never_leaves(frame, schema):
    columns = dict(schema.columns)
    columns["amount"] = columns["amount"].model_copy(update={"nullable": True})
    columns["email"] = ColumnSchema(kind="string", role="ignored", pii=True)
    relaxed = schema.model_copy(update={"columns": columns})
    rows = frame.head(3).assign(email="a@b.example", extra=[1, None, 3])
    rows.loc[0, "amount"] = np.inf  # an infinity is a missing value
    rows.loc[1, "color"] = "purple"
    admitted = admit(rows, relaxed, "part.parquet")
    assert len(admitted.rows) == 2 and np.isnan(admitted.rows.loc[0, "amount"])
    assert "email" not in admitted.rows and "email" not in admitted.rejects
    assert admitted.rows["extra"].tolist() == ["1.0", "3.0"]  # unknown columns as text


def test_a_missing_feature_column_is_one_error_naming_it(frame, schema):
    with pytest.raises(PipelineError, match=r"part.csv: missing feature column\(s\) \['color'\]"):
        admit(frame.drop(columns="color"), schema, "part.csv")


def test_integer_keys_keep_their_digits_and_fractions_are_wrong_types(frame, schema):
    columns = dict(schema.columns)
    columns["key"] = ColumnSchema(kind="int", role="id")
    keyed = schema.model_copy(update={"columns": columns})
    rows = frame.head(2).assign(key=pd.Series([2**62 + 1, 5], dtype="int64"))
    assert admit(rows, keyed, "p").rows["key"].tolist() == [2**62 + 1, 5]
    admitted = admit(frame.head(2).assign(key=[1.5, 2.0]), keyed, "p")
    assert admitted.rejects["reason"].tolist() == ["wrong_type:key"]


def _partitions(folder, frame):
    folder.mkdir()
    frame.iloc[:150].to_csv(folder / "a.csv", index=False)
    dirty = frame.iloc[150:].copy()
    dirty["color"] = dirty["color"].where(dirty.index % 50 != 0, "purple")
    dirty.to_parquet(folder / "b.parquet", index=False)
    return int((dirty.index % 50 == 0).sum())


@pytest.mark.parametrize("chunk_rows", [64, 1000])
def test_every_row_is_scored_or_rejected_whatever_the_chunk_size(
    tmp_path, frame, scoring, chunk_rows
):
    unseen = _partitions(tmp_path / "in", frame)
    out, rejects = tmp_path / "out.parquet", tmp_path / "rejects.parquet"
    with ParquetSink(out) as scored, ParquetSink(rejects) as rejected:
        tally = score.score_source(
            str(tmp_path / "in"),
            scoring,
            (scored, rejected),
            chunk_rows=chunk_rows,
            scored_at=SCORED_AT,
        )
    result, refused = pd.read_parquet(out), pd.read_parquet(rejects)
    assert (tally.rows_in, tally.scored, tally.rejected) == (len(frame), len(result), len(refused))
    assert sorted([*result["row_id"], *refused["row_id"]]) == sorted(frame["row_id"])
    assert refused["reason"].eq("unseen_category:color").sum() == unseen
    assert refused["reason"].str.match(r"(unseen_category|out_of_range):").all()
    assert list(result.columns[-4:]) == list(score.SCORE_COLUMNS)
    assert result["model_version"].eq(3).all() and result["scored_at"].eq(SCORED_AT).all()
    expected = FakePyfunc(scoring.schema.feature_columns).predict(
        frame.set_index("row_id").loc[result["row_id"], scoring.schema.feature_columns]
    )
    np.testing.assert_allclose(result["probability"], expected["probability"])
    assert scoring.model.calls == -(-150 // chunk_rows) + -(-(len(frame) - 150) // chunk_rows)


def test_all_rejected_still_writes_both_files_with_their_columns(tmp_path, frame, scoring):
    (tmp_path / "in").mkdir()
    frame.head(5).assign(color="purple").to_parquet(tmp_path / "in" / "p.parquet")
    out, rejects = tmp_path / "out.parquet", tmp_path / "r.parquet"
    with ParquetSink(out) as scored, ParquetSink(rejects) as rejected:
        score.score_source(
            str(tmp_path / "in"), scoring, (scored, rejected), chunk_rows=100, scored_at=SCORED_AT
        )
    assert pd.read_parquet(out).empty and "probability" in pd.read_parquet(out)
    assert len(pd.read_parquet(rejects)) == 5


def test_a_failed_run_leaves_no_partial_output(tmp_path, frame, scoring):
    _partitions(tmp_path / "in", frame)
    (tmp_path / "in" / "c.csv").write_text("row_id,amount\nr1,3\n")  # no color, no age
    out = tmp_path / "out.parquet"
    out.write_bytes(b"previous")
    with pytest.raises(
        PipelineError, match=r"c.csv: missing feature column\(s\) \['age', 'color'\]"
    ):
        with ParquetSink(out) as scored, ParquetSink(tmp_path / "r.parquet") as rejected:
            score.score_source(
                str(tmp_path / "in"),
                scoring,
                (scored, rejected),
                chunk_rows=100,
                scored_at=SCORED_AT,
            )
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out.parquet"]


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: None, "--input: .* does not exist"),
        (lambda p: p.mkdir(), "--input: .* holds no CSV or Parquet files"),
        (lambda p: p.write_bytes(b"PAR1 broken"), "cannot parse as parquet"),
    ],
)
def test_bad_input_is_one_line_naming_it(tmp_path, scoring, write, message, monkeypatch):
    source = tmp_path / ("in.parquet" if "parse" in message else "in")
    write(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(score, "load_params", _params)
    monkeypatch.setattr(score, "load_scoring_model", lambda name, version: scoring)
    with pytest.raises(PipelineError, match=message):
        score.main(["--input", str(source), "--output", str(tmp_path / "o.parquet")])
    assert not (tmp_path / "o.parquet").exists()


def test_no_champion_is_one_line_naming_the_model(monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    class Registry:
        def get_model_version_by_alias(self, name, alias):
            raise MlflowException("not found", error_code=RESOURCE_DOES_NOT_EXIST)

    monkeypatch.setattr(score.tracking, "client", Registry)
    with pytest.raises(PipelineError, match="registered model 'nobody' has no @champion version"):
        score.load_scoring_model("nobody", None)


def test_default_rejects_file_sits_beside_the_output(tmp_path):
    assert score.default_rejects(tmp_path / "s.parquet") == tmp_path / "s.rejects.parquet"


def _params():
    from pipelines.config import load_params
    from tests.integration.conftest import REPO

    return load_params(REPO / "params.yaml")
