"""Temporary copies of the repository in which the real pipeline runs (dvc, MLflow, TF)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
import yaml

from pipelines import paths
from pipelines.config import DataParams, SplitParams, load_params
from pipelines.contracts import ClassWeights, TunedConfig
from pipelines.datasets import schema_path
from pipelines.schema import infer_schema, save_schema
from pipelines.split import split
from tests.conftest import make_frame

REPO = Path(__file__).resolve().parents[2]
COPIED = [
    "pipelines",
    "dags",
    "params.yaml",
    "dvc.yaml",
    ".dvcignore",
    ".gitignore",
    "data/schemas",
    "data/README.md",
    "mlflow",
    ".dvc/config",
    ".dvc/.gitignore",
]
TINY = {
    "simulate": {"n_days": 3, "rows_per_day": 1500},
    "train": {"epochs": 4, "hidden_units": [16], "early_stopping_patience": 2},
    # SHAP on 20 rows against 20 (the default 100 against 50 is a third of evaluate here);
    # its rendering and its numbers have their own tests.
    "evaluate": {"importance_repeats": 1, "shap_rows": 20, "shap_background": 20},
    "quantize": {"qat_epochs": 1},
}
# For runs about orchestration or data rather than evaluate's and quantize's own features,
# which have their tests: no baselines, importance or SHAP, one quantized variant.
LEAN = {
    "evaluate": {"baselines": False, "importance_repeats": 0, "shap_rows": 0},
    "quantize": {"variants": ["dynamic_range"]},
}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def last_error_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.startswith("ERROR")]
        return lines[-1] if lines else ""


class RepoCopy:
    def __init__(self, root: Path):
        self.root = root

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "PYTEST_"))
        }
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        env["PIPELINE_LOG_LEVEL"] = "INFO"
        return env | (extra or {})

    def run(
        self,
        *args: str,
        check: bool = False,
        timeout: int = 900,
        env_extra: dict[str, str] | None = None,
    ) -> Run:
        done = subprocess.run(
            list(args),
            cwd=self.root,
            env=self.env(env_extra),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        result = Run(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} failed ({done.returncode}):\n{result.output[-6000:]}"
            )
        return result

    def python(self, *args: str, **kwargs) -> Run:
        return self.run(sys.executable, *args, **kwargs)

    def dvc(self, *args: str, **kwargs) -> Run:
        return self.run(str(Path(sys.executable).parent / "dvc"), *args, **kwargs)

    def params(self) -> dict:
        return yaml.safe_load((self.root / "params.yaml").read_text())

    def set_params(self, changes: dict) -> None:
        params = self.params()
        for section, values in changes.items():
            if isinstance(values, dict):
                params.setdefault(section, {}).update(values)
            else:
                params[section] = values
        (self.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def mlflow_client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=f"sqlite:///{self.root / 'mlflow' / 'mlflow.db'}")

    def registered_versions(self, name: str) -> list:
        if not (self.root / "mlflow" / "mlflow.db").exists():
            return []
        return self.mlflow_client().search_model_versions(f"name='{name}'")


def ran_stages(output: str) -> list[str]:
    return [
        line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")
    ]


def make_repo_copy(destination: Path, params: dict | None = None) -> RepoCopy:
    destination.mkdir(parents=True, exist_ok=True)
    for relative in COPIED:
        source = REPO / relative
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(
                source,
                target,
                ignore=shutil.ignore_patterns(
                    "__pycache__", "mlflow.db", "artifacts", "server", "lineage.json"
                ),
            )
        elif source.exists():
            shutil.copy2(source, target)
    copy = RepoCopy(destination)
    copy.set_params(TINY | (params or {}))
    git = ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]
    copy.run("git", "init", "-q", check=True)
    copy.run(*git, "add", "-A", check=True)
    copy.run(*git, "commit", "-qm", "copy", check=True)
    assert_runs_own_code(copy)
    return copy


def assert_runs_own_code(
    copy: RepoCopy, cwd: Path | None = None, env_extra: dict[str, str] | None = None
) -> None:
    """The environment has the project installed (editable, at the checkout it was synced
    from), so a copy must shadow it: ``python -m``/``-c`` put the working directory first on
    sys.path, and Airflow's processes get the copy on PYTHONPATH, also ahead of site-packages.
    A test that ran the installed code instead would test the wrong tree."""
    done = subprocess.run(
        [sys.executable, "-c", "import pipelines; print(pipelines.__file__)"],
        cwd=cwd or copy.root,
        env=copy.env(env_extra),
        capture_output=True,
        text=True,
        check=True,
    )
    where = Path(done.stdout.strip()).resolve()
    assert where.is_relative_to(copy.root.resolve()), where


def copy_with_outputs(source: RepoCopy, destination: Path, registry: bool = True) -> RepoCopy:
    """A new repo copy holding ``source``'s pipeline outputs (so ``dvc status`` is clean), and
    its embedded MLflow registry unless ``registry`` is False."""
    copy = make_repo_copy(destination)
    shutil.copytree(source.root / "data", copy.root / "data", dirs_exist_ok=True)
    shutil.copytree(source.root / ".dvc" / "cache", copy.root / ".dvc" / "cache")
    shutil.copy2(source.root / "dvc.lock", copy.root / "dvc.lock")
    if registry:
        shutil.copytree(source.root / "mlflow", copy.root / "mlflow", dirs_exist_ok=True)
    return copy


_TINY_PIPELINE: dict[str, tuple[RepoCopy, Run]] = {}


def tiny_pipeline(tmp_path_factory) -> tuple[RepoCopy, Run]:
    """The default pipeline run end to end on the tiny configuration, built once per test
    session (by whichever pytest-xdist worker needs it first; ``tests/faults`` shares it
    through its own fixture of the same name), and handed to each worker as its own copy:
    the whole folder with its git history, DVC cache and registry, so that what one worker's
    tests do in it never reaches another's."""
    if "run" not in _TINY_PIPELINE:
        built, run = _built_once(_shared_folder(tmp_path_factory))
        own = tmp_path_factory.mktemp("pipeline")
        shutil.copytree(built, own, symlinks=True, dirs_exist_ok=True)
        _TINY_PIPELINE["run"] = (RepoCopy(own), run)
    return _TINY_PIPELINE["run"]


def _shared_folder(tmp_path_factory) -> Path:
    """The folder every pytest-xdist worker of this session sees; this session's own without."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _built_once(shared: Path) -> tuple[Path, Run]:
    from filelock import FileLock

    record = shared / "tiny-pipeline.json"
    with FileLock(str(shared / "tiny-pipeline.lock")):
        if not record.exists():
            copy = make_repo_copy(Path(tempfile.mkdtemp(prefix="tiny-pipeline-", dir=shared)))
            copy.python("-m", "pipelines.simulate", "--if-empty", check=True)
            run = copy.dvc("repro", check=True)
            record.write_text(json.dumps({"root": str(copy.root), "run": asdict(run)}))
    built = json.loads(record.read_text())
    return Path(built["root"]), Run(**built["run"])


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory) -> tuple[RepoCopy, Run]:
    """The default pipeline, run once end to end on the tiny configuration."""
    return tiny_pipeline(tmp_path_factory)


def train_repo(destination: Path, train: dict, rows: int = 1000) -> RepoCopy:
    """A repo copy holding only what ``python -m pipelines.train`` reads, from make_frame rows.

    Far cheaper than running the stages before train, which these tests do not exercise.
    """
    data = DataParams(source="data/landing", target="label", positive_label=1)
    copy = make_repo_copy(destination, {"data": data.model_dump(), "train": train})
    frame = make_frame(n=rows, positive_rate=0.1, seed=7)
    schema = infer_schema(frame, data, 10, 3.0, 10)
    split_cfg = SplitParams(
        method="stratified", val_size=0.2, test_size=0.2, time_column=None, group_column=None
    )
    train_frame, val, _ = split(frame, schema, split_cfg, seed=0)
    for frame_, path in ((train_frame, paths.AUGMENTED_TRAIN), (val, paths.SPLIT_VAL)):
        (copy.root / path).parent.mkdir(parents=True, exist_ok=True)
        frame_.to_parquet(copy.root / path, index=False)
    save_schema(schema, copy.root / schema_path(data))
    save_schema(schema, copy.root / paths.ENFORCED_SCHEMA)
    (copy.root / paths.CLASS_WEIGHTS).parent.mkdir(parents=True, exist_ok=True)
    (copy.root / paths.CLASS_WEIGHTS).write_text(ClassWeights(weights=None).model_dump_json())
    params = load_params(copy.root / paths.PARAMS)
    tuned = TunedConfig.from_params(params.train, params.rebalance)
    (copy.root / paths.TUNED_CONFIG).parent.mkdir(parents=True, exist_ok=True)
    (copy.root / paths.TUNED_CONFIG).write_text(tuned.model_dump_json())
    return copy
