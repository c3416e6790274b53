"""The validate stage under real `dvc repro`: drift stops the run and nothing accepted is lost.

Each test starts from a copy of the tiny pipeline's outputs (the session's ``pipeline_repo``),
whose ingest and validate already ran on the simulated partitions: the same state a
``dvc repro validate`` of its own would reach, without paying for it again."""

import hashlib
import json
import re

import pandas as pd
import pytest
import yaml

from tests.integration.conftest import copy_with_outputs

pytestmark = pytest.mark.integration

KEPT = [
    "data/validated/clean.parquet",
    "data/validated/quarantine.parquet",
    "data/validated/data_docs/index.html",
    "data/reference/tabular-classifier__is_fraud.json",
    "data/metrics/validate.json",
    "data/reports/validate.json",
]


def digests(root) -> dict[str, str]:
    return {p: hashlib.sha256((root / p).read_bytes()).hexdigest() for p in KEPT}


def validate_lock(repo) -> dict:
    return yaml.safe_load((repo.root / "dvc.lock").read_text())["stages"]["validate"]


def test_drift_stops_the_run_and_keeps_the_accepted_outputs(tmp_path, pipeline_repo):
    repo = copy_with_outputs(pipeline_repo[0], tmp_path / "repo", registry=False)
    repo.dvc("repro", "validate", check=True)  # up to date: nothing runs
    accepted = digests(repo.root)
    accepted_lock = validate_lock(repo)

    for partition in sorted((repo.root / "data/landing").glob("*.parquet"))[-2:]:
        day = pd.read_parquet(partition)
        day["amount"] = day["amount"] * 8
        day["channel"] = "online"
        day.to_parquet(partition, index=False)
    result = repo.dvc("repro", "validate")

    assert result.returncode != 0
    assert "drift against the last accepted snapshot above validate.drift_fail=0.25" in (
        result.output
    )
    assert "column 'amount' PSI" in result.output and "column 'channel' PSI" in result.output
    assert digests(repo.root) == accepted
    assert validate_lock(repo) == accepted_lock
    assert (repo.root / "data/validated/data_docs_failed/index.html").exists()


def test_pii_never_leaves_the_validate_stage(pipeline_repo):
    repo, _ = pipeline_repo
    emails = pd.read_parquet(repo.root / "data/raw/snapshot.parquet")["customer_email"]
    assert emails.str.fullmatch(r"pii:[0-9a-f]{32}").all()  # pseudonymised at ingest
    leaks = [
        path
        for folder in (
            "data/validated",
            "data/splits",
            "data/reference",
            "data/metrics",
            "data/reports",
            "mlflow",
        )
        for path in (repo.root / folder).rglob("*")
        if path.is_file() and re.search(rb"customer\d{6}@example\.com", path.read_bytes())
    ]
    assert leaks == []
    assert "customer_email" not in pd.read_parquet(repo.root / "data/validated/clean.parquet")


def test_only_new_partitions_are_validated_and_the_result_equals_a_full_run(
    tmp_path, pipeline_repo
):
    repo = copy_with_outputs(pipeline_repo[0], tmp_path / "repo", registry=False)
    repo.dvc("repro", "validate", check=True)  # up to date: nothing runs
    repo.python("-m", "pipelines.simulate", "--first-day", "3", "--days", "1", check=True)
    repo.dvc("repro", "validate", check=True)
    report = json.loads((repo.root / "data/reports/validate.json").read_text())
    assert (report["partitions_total"], report["partitions_validated"]) == (4, 1)
    assert report["rows_validated"] < report["rows_in"] / 3
    incremental = pd.read_parquet(repo.root / "data/validated/clean.parquet")

    forced = repo.dvc("repro", "--force", "validate", check=True)
    assert "4 partition(s): 4 already accepted, 0 to validate" in forced.output

    (repo.root / "data/validated/accepted.json").unlink()
    repo.python("-m", "pipelines.validate", check=True)
    assert pd.read_parquet(repo.root / "data/validated/clean.parquet").equals(incremental)
