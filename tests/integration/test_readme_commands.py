"""Every command in README.md's ```bash blocks runs as written.

Each block runs as one bash script (so an ``export`` reaches the lines after it), in README
order, in one temporary copy of the repository that already holds the tiny pipeline's
outputs and registry: what a user has after ``make run``. A block fails on its first failing
line, and the test names that line. Commands that cannot run here are skipped by the explicit
lists below, and the test checks that each skipped command is still in the README, so the
lists cannot go stale.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, RepoCopy, copy_with_outputs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

README = REPO / "README.md"

# Lines skipped wherever they appear, with why.
SKIPPED_LINES = {
    # Both build .venv/ from uv.lock and run the whole pipeline or the whole suite: the
    # copy stands for what `make run` leaves behind, and `make test` is this suite.
    "make run": "the state this test starts from",
    "make test": "this suite",
    # Needs a second champion in the alias history; tests/integration/test_registry.py
    # rolls back after two promotions.
    "python -m pipelines.registry rollback": "needs two champions",
    # A server on a fixed port, and a request to it; tests/integration/test_score.py makes the
    # same REST round trip on a free port and stops its server.
    "python -m pipelines.serve --port 8000 &": ("a long-running server"),
    "curl -s http://127.0.0.1:8000/invocations -H 'Content-Type: application/json' -d "
    '\'{"dataframe_records": [{"amount": 42.5, "merchant_category": "grocery", "channel": "pos", '
    '"country": "US", "hour": 14, "distance_from_home_km": 3.2, "account_age_days": 900, '
    '"tx_count_24h": 1, "card_present": 1}]}\'': "needs the server above",
    # v1 names the commit of the repository that registered it, which this copy's fresh git
    # history lacks; tests/integration/test_checkout.py restores a version in that repository.
    "python -m pipelines.registry checkout 1": "needs the registering repository's history",
}

# Whole blocks skipped, keyed by their first command line, with why.
SKIPPED_BLOCKS = {
    # No Docker engine on test machines; tests/docker checks the compose stack statically.
    "cp docker/.env.example docker/.env": "needs a Docker engine",
    'airflow() { docker compose -f docker/compose.yaml exec airflow-scheduler airflow "$@"; }': (
        "needs a Docker engine"
    ),
}


def bash_blocks(text: str) -> list[list[str]]:
    """The lines of each ```bash block, in order (indented blocks in lists included)."""
    blocks = re.findall(r"^[ \t]*```bash\n(.*?)^[ \t]*```", text, flags=re.DOTALL | re.MULTILINE)
    return [[line.strip() for line in block.splitlines() if line.strip()] for block in blocks]


def command(line: str) -> str:
    """A line without its trailing comment (the README aligns them after two spaces)."""
    return re.split(r"\s{2,}#", line)[0].strip() if not line.startswith("#") else ""


def script(block: list[str]) -> str:
    """The block as a bash script that stops at, and names, its first failing command."""
    lines = [command(line) for line in block]
    kept = [line for line in lines if line and line not in SKIPPED_LINES]
    return "\n".join(
        ["set -eE -o pipefail", "trap 'echo \"README command failed: $BASH_COMMAND\" >&2' ERR"]
        + kept
    )


def runnable_blocks(text: str) -> list[list[str]]:
    return [block for block in bash_blocks(text) if command(block[0]) not in SKIPPED_BLOCKS]


def test_skip_lists_name_commands_still_in_the_readme():
    blocks = bash_blocks(README.read_text())
    lines = {command(line) for block in blocks for line in block}
    firsts = {command(block[0]) for block in blocks}
    assert not set(SKIPPED_LINES) - lines, "skipped commands no longer in README.md"
    assert not set(SKIPPED_BLOCKS) - firsts, "skipped blocks no longer in README.md"


def test_script_stops_at_the_first_failing_line(tmp_path):
    """The harness itself: a broken command fails its block, and the error names it."""
    copy = RepoCopy(tmp_path)
    done = copy.run("bash", "-c", script(["true", "false  # broken", "touch after"]))
    assert done.returncode != 0
    assert "README command failed: false" in done.stderr
    assert not (tmp_path / "after").exists()


@pytest.fixture(scope="module")
def readme_repo(pipeline_repo, tmp_path_factory) -> RepoCopy:
    """A copy after `make run`: the tiny pipeline's outputs and registry, and a .venv/."""
    source, _ = pipeline_repo
    copy = copy_with_outputs(source, tmp_path_factory.mktemp("readme"))
    # The environment this suite runs in stands for the .venv/ that `make run` builds.
    (copy.root / ".venv").symlink_to(Path(sys.prefix))
    return copy


def test_readme_bash_blocks_run_as_written(readme_repo):
    blocks = runnable_blocks(README.read_text())
    assert blocks, "README.md has no runnable ```bash block"
    for block in blocks:
        done = readme_repo.run("bash", "-c", script(block), timeout=1800)
        assert done.returncode == 0, (
            f"README block starting {block[0]!r} failed ({done.returncode}):\n{done.output[-6000:]}"
        )
