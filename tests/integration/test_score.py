"""Batch scoring and REST serving of the tiny pipeline's registered champion, as users run them:
``python -m pipelines.score`` over the landing partitions, and ``mlflow models serve`` answering
raw JSON rows with the batch scorer's own scores."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest

from tests.integration.services import model_server

pytestmark = pytest.mark.integration
MODEL = "tabular-classifier"


@pytest.fixture(scope="module")
def scored(pipeline_repo, tmp_path_factory):
    """The landing partitions scored by the CLI in chunks smaller than a partition."""
    repo, _ = pipeline_repo
    out = tmp_path_factory.mktemp("scored")
    run = repo.python(
        "-m",
        "pipelines.score",
        "--input",
        "data/landing",
        "--output",
        str(out / "scores.parquet"),
        "--chunk-rows",
        "1000",
        check=True,
    )
    scores = pd.read_parquet(out / "scores.parquet")
    rejects = pd.read_parquet(out / "scores.rejects.parquet")
    return repo, run, scores, rejects


def test_every_landing_row_is_scored_or_rejected_with_a_reason(scored):
    repo, run, scores, rejects = scored
    landing = pd.read_parquet(repo.root / "data" / "landing")
    assert len(scores) + len(rejects) == len(landing) and len(rejects) < 0.05 * len(landing)
    assert rejects["reason"].str.match(r"(wrong_type|null|out_of_range|unseen_category):").all()
    champion = repo.mlflow_client().get_model_version_by_alias(MODEL, "champion").version
    assert scores["model_version"].eq(int(champion)).all()
    assert scores["scored_at"].nunique() == 1 and scores["probability"].between(0, 1).all()
    assert set(scores["label"]) <= {0, 1}
    # PII lands in neither file; the label is what is predicted, not carried into the scores.
    assert "customer_email" not in scores and "customer_email" not in rejects
    assert "is_fraud" not in scores and "transaction_id" in rejects
    assert f"scored {len(scores)} of {len(landing)} rows" in run.stderr


def test_no_champion_is_one_line_naming_the_model(scored, tmp_path):
    repo = scored[0]
    run = repo.python(
        "-m",
        "pipelines.score",
        "--input",
        "data/landing",
        "--output",
        str(tmp_path / "s.parquet"),
        "--model-name",
        "nobody",
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.last_error_line().startswith(
        "ERROR [score] registered model 'nobody' has no @champion version"
    )


def test_rest_serving_answers_raw_rows_with_the_batch_scores(scored, tmp_path):
    repo, _, scores, _ = scored
    landing = pd.read_parquet(repo.root / "data" / "landing")
    first = landing.drop_duplicates("transaction_id").set_index("transaction_id")
    rows = first.loc[scores["transaction_id"].head(25)]
    records = json.loads(
        rows.reset_index().drop(columns="is_fraud").to_json(orient="records", date_format="iso")
    )
    env = repo.env({"MLFLOW_TRACKING_URI": f"sqlite:///{repo.root / 'mlflow' / 'mlflow.db'}"})
    with model_server(repo.root, f"models:/{MODEL}@champion", env, tmp_path) as url:
        request = urllib.request.Request(
            f"{url}/invocations",
            data=json.dumps({"dataframe_records": records}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            predictions = pd.DataFrame(json.loads(answer.read())["predictions"])
        # A bad row is a 400 whose message names the column, not a generic server error.
        bad = urllib.request.Request(
            f"{url}/invocations",
            data=json.dumps({"dataframe_records": [records[0] | {"amount": "abc"}]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=60)
        assert refused.value.code == 400
        assert (
            "column 'amount': expected numbers, got ['abc']"
            in json.loads(refused.value.read())["message"]
        )
    batch = scores.head(25)
    np.testing.assert_allclose(predictions["probability"], batch["probability"], atol=1e-6)
    assert predictions["label"].tolist() == batch["label"].tolist()
