"""Bad inputs that must fail cleanly; a second real dataset is in test_breast_cancer_demo."""

import pytest

from tests.integration.conftest import make_repo_copy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def failing_repo(tmp_path_factory):
    repo = make_repo_copy(tmp_path_factory.mktemp("bad"))
    repo.python("-m", "pipelines.simulate", check=True)
    return repo


def write_source(repo, name: str, content: bytes) -> str:
    path = repo.root / "data" / "bad" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return f"data/bad/{name}"


def single_class_csv(repo) -> str:
    rows = "\n".join(f"{i},{i * 0.5},0" for i in range(200))
    return write_source(repo, "one_class.csv", f"id,x,y\n{rows}\n".encode())


CASES = {
    "unknown params key": (
        lambda repo: repo.set_params({"train": {"epochz": 3}}),
        "params.yaml: invalid params: train.epochz: unknown key",
    ),
    "missing source": (
        lambda repo: repo.set_params({"data": {"source": "data/nowhere"}}),
        "data/nowhere",
    ),
    "empty file": (
        lambda repo: repo.set_params({"data": {"source": write_source(repo, "empty.csv", b"")}}),
        "data/bad/empty.csv: file is empty",
    ),
    "single-class label": (
        lambda repo: repo.set_params(
            {"data": {"source": single_class_csv(repo), "target": "y", "positive_label": 1}}
        ),
        "column 'y': a binary label needs exactly 2 values, found 1",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_with_one_clear_line_and_registers_nothing(failing_repo, case):
    breaks, message = CASES[case]
    original = (failing_repo.root / "params.yaml").read_text()
    try:
        breaks(failing_repo)
        result = failing_repo.dvc("repro")
    finally:
        (failing_repo.root / "params.yaml").write_text(original)
    assert result.returncode != 0
    assert message in result.output, result.output[-3000:]
    assert not (failing_repo.root / "data/reports/register.json").exists()
    assert failing_repo.registered_versions(failing_repo.params()["register"]["model_name"]) == []


def test_stage_entry_point_prints_one_line_reason(failing_repo):
    original = (failing_repo.root / "params.yaml").read_text()
    try:
        failing_repo.set_params({"data": {"source": "data/nowhere"}})
        result = failing_repo.python("-m", "pipelines.ingest")
    finally:
        (failing_repo.root / "params.yaml").write_text(original)
    assert result.returncode == 1
    assert result.last_error_line() == "ERROR [ingest] data.source: data/nowhere does not exist"
    assert result.stderr.strip().splitlines()[-1] == result.last_error_line()
