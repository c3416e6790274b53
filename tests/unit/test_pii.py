"""PII columns are flagged, hashed or dropped, and never reach the outputs, Data Docs or logs."""

import logging

import pandas as pd
import pytest

from pipelines.errors import PipelineError
from pipelines.pii import PII_SALT_ENV
from pipelines.schema import ColumnSchema, infer_schema, load_schema, save_schema
from pipelines.validate import validate
from tests.conftest import make_frame


def with_email(n: int = 400):
    frame = make_frame(n=n)
    frame["email"] = [f"person{i}@secret-pii.test" for i in range(n)]
    frame.loc[0, "email"] = "bad value person0@secret-pii.test"
    return frame


@pytest.fixture
def pii_schema(data_params, validate_params):
    return infer_schema(with_email(), data_params, 10, 0.5, 10)


def all_text(folder) -> str:
    return "\n".join(p.read_text(errors="ignore") for p in folder.rglob("*") if p.is_file())


def test_inference_flags_personal_columns_without_recording_values(pii_schema, tmp_path):
    email = pii_schema.columns["email"]
    assert email.pii and email.role == "id" and email.categories is None
    assert pii_schema.pii == ["email"]
    save_schema(pii_schema, tmp_path / "s.yaml")
    assert "secret-pii.test" not in (tmp_path / "s.yaml").read_text()
    assert load_schema(tmp_path / "s.yaml") == pii_schema


def test_a_pii_column_cannot_be_a_feature():
    with pytest.raises(ValueError, match="a pii column cannot have role 'categorical'"):
        ColumnSchema(kind="string", role="categorical", pii=True, categories=["a"])


def test_drop_policy_removes_pii_everywhere(pii_schema, validate_params, tmp_path, caplog):
    frame = with_email()
    frame = pd.concat([frame, frame.iloc[[5]]], ignore_index=True)  # a duplicate goes to quarantine
    with caplog.at_level(logging.DEBUG):
        cleaned = validate(frame, pii_schema, validate_params, tmp_path)
    assert "email" not in cleaned.clean.columns and "email" not in cleaned.quarantine.columns
    assert len(cleaned.quarantine) == 1
    assert "secret-pii.test" not in all_text(tmp_path)
    assert "secret-pii.test" not in caplog.text


def test_hash_policy_needs_a_salt_from_the_environment(
    pii_schema, validate_params, tmp_path, monkeypatch
):
    hashing = validate_params.model_copy(update={"pii_policy": "hash"})
    monkeypatch.delenv(PII_SALT_ENV, raising=False)
    with pytest.raises(PipelineError, match=f"set {PII_SALT_ENV}.*'email'"):
        validate(with_email(), pii_schema, hashing, tmp_path)

    monkeypatch.setenv(PII_SALT_ENV, "salt-one")
    one = validate(with_email(), pii_schema, hashing, tmp_path / "one").clean["email"]
    again = validate(with_email(), pii_schema, hashing, tmp_path / "again").clean["email"]
    monkeypatch.setenv(PII_SALT_ENV, "salt-two")
    two = validate(with_email(), pii_schema, hashing, tmp_path / "two").clean["email"]
    assert one.equals(again) and not one.equals(two)
    assert one.is_unique and not one.str.contains("@").any()
    assert "secret-pii.test" not in all_text(tmp_path)


def test_critical_failure_messages_do_not_show_pii(pii_schema, validate_params, tmp_path):
    frame = with_email()
    frame = pd.concat([frame, frame.iloc[:3]], ignore_index=True)  # duplicate ids: GX lists them
    frame["label"] = 0
    with pytest.raises(PipelineError) as error:
        validate(frame, pii_schema, validate_params, tmp_path)
    assert "secret-pii.test" not in str(error.value)
    assert "secret-pii.test" not in all_text(tmp_path)
