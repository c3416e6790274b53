"""A dataset's identity (``data.name``) owns its schema, drift reference and accepted partitions.

Ingest and validate run in-process on small CSV exports in a temporary project, in the
sequences the issue reproduced: a renamed export of the same table, other files of the same
target, a different dataset, and back."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipelines import ingest, paths, validate
from pipelines.config import load_params
from pipelines.datasets import check_outputs_current
from pipelines.errors import PipelineError
from pipelines.io import read_json
from tests.conftest import make_frame

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_PII_KEY", "test-key")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"] = {"source": "exports/default.csv", "target": "label", "positive_label": 1}
    params["validate"] |= {"min_rows": 10, "max_categories": 10}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    Path("exports").mkdir()
    return tmp_path


def export(name: str, frame: pd.DataFrame) -> str:
    path = Path("exports") / name
    frame.to_csv(path, index=False)
    return str(path)


def run(source: str, **data) -> dict:
    """Point params.yaml at ``source`` (and any other data keys), then ingest and validate."""
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["data"] |= {"source": source, **data}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    ingest.main()
    validate.main()
    return read_json(paths.VALIDATE_REPORT)


def schemas() -> list[str]:
    return sorted(p.name for p in paths.SCHEMAS.glob("*"))


def test_a_renamed_export_is_still_checked_against_the_dataset(project):
    first = run(export("default.csv", make_frame(600, seed=1)))
    assert first["schema_inferred"] and first["dataset"] == "tabular-classifier__label"
    assert schemas() == ["tabular-classifier__label.yaml"]

    broken = export("2026-12.csv", make_frame(600, seed=2).drop(columns=["age"]))
    with pytest.raises(PipelineError, match="age"):
        run(broken)
    assert schemas() == ["tabular-classifier__label.yaml"]  # nothing inferred from the broken file

    shifted = make_frame(600, seed=3)
    shifted["amount"] *= 8
    with pytest.raises(PipelineError, match="drift against the last accepted snapshot"):
        run(export("2027-01.csv", shifted))

    again = run(export("2027-02.csv", make_frame(600, seed=4)))
    assert not again["schema_inferred"]
    assert again["drift"]["reference_rows"] == first["rows_clean"]


def test_other_files_and_datasets_never_mix_with_the_first(project):
    first = run(export("default.csv", make_frame(600, seed=1)))
    first_clean = pd.read_parquet(paths.CLEAN)

    run(export("other.csv", make_frame(500, seed=5)))  # same dataset, passes
    single_class = make_frame(300, seed=6).assign(label=0)
    with pytest.raises(PipelineError, match="label"):
        run(export("single.csv", single_class))
    with pytest.raises(PipelineError, match="color"):
        run(export("no_color.csv", make_frame(300, seed=7).drop(columns=["color"])))
    other = make_frame(400, seed=8).rename(columns={"age": "tenure"})
    elsewhere = run(export("elsewhere.csv", other), name="churn")
    assert elsewhere["schema_inferred"] and elsewhere["drift"]["reference_rows"] == 0
    assert schemas() == ["churn.yaml", "tabular-classifier__label.yaml"]

    back = run("exports/default.csv", name=None)
    assert back["dataset"] == "tabular-classifier__label" and not back["schema_inferred"]
    assert back["partitions_validated"] == 1  # validated again, nothing reused from churn
    assert back["rows_clean"] == first["rows_clean"]
    pd.testing.assert_frame_equal(pd.read_parquet(paths.CLEAN), first_clean)


def test_a_schema_keyed_on_the_old_file_name_is_adopted_once(project):
    source = export("default.csv", make_frame(600, seed=1))
    run(source)
    paths.SCHEMAS.joinpath("tabular-classifier__label.yaml").rename(
        paths.SCHEMAS / "default__label.yaml"
    )
    paths.REFERENCE.joinpath("tabular-classifier__label.json").rename(
        paths.REFERENCE / "default__label.json"
    )
    report = run(source)
    assert not report["schema_inferred"] and report["drift"]["reference_rows"] > 0
    assert schemas() == ["tabular-classifier__label.yaml"]
    assert sorted(p.name for p in paths.REFERENCE.glob("*")) == ["tabular-classifier__label.json"]


def test_register_on_another_dataset_s_outputs_says_they_are_stale(project):
    run(export("default.csv", make_frame(600, seed=1)))
    test = pd.read_parquet(paths.CLEAN)
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["data"] |= {"name": "churn"}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(PipelineError, match="made for dataset 'tabular-classifier__label'.*stale"):
        check_outputs_current(load_params().data, test)
    params["data"] |= {"name": None, "source": "exports/other.csv"}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(PipelineError, match="made for source 'exports/default.csv'.*stale"):
        check_outputs_current(load_params().data, test)
    # Another target is another dataset by default; named the same, the missing column says it.
    params["data"] |= {"source": "exports/default.csv", "target": "churned"}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(PipelineError, match="made for dataset 'tabular-classifier__label'.*stale"):
        check_outputs_current(load_params().data, test)
    params["data"] |= {"name": "tabular-classifier__label"}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(PipelineError, match="no column 'churned'.*stale"):
        check_outputs_current(load_params().data, test)
    params["data"] |= {"target": "label", "name": None}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    paths.FEATURE_TRANSFORM.parent.mkdir(parents=True)
    paths.FEATURE_TRANSFORM.write_text('{"numeric": ["amount", "tenure"], "categorical": {}}')
    with pytest.raises(PipelineError, match=r"trained on columns the test split lacks \(tenure\)"):
        check_outputs_current(load_params().data, test)
    paths.FEATURE_TRANSFORM.write_text('{"numeric": ["amount", "age"], "categorical": {}}')
    check_outputs_current(load_params().data, test)  # current: no error
