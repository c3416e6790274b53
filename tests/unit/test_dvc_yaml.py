"""dvc.yaml only wires, and what it declares matches the code exactly."""

import ast
from pathlib import Path

import pytest
import yaml

from pipelines import config, paths

REPO = Path(__file__).resolve().parents[2]
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = DVC["stages"]
ORDER = [
    "ingest",
    "validate",
    "split",
    "tune",
    "rebalance",
    "augment",
    "train",
    "evaluate",
    "quantize",
    "register",
]
# Files a stage loads by path rather than by import: register logs serving.py as the pyfunc.
LOADED_BY_PATH = {"register": ["serving"]}
# The params section a stage owns; each of its fields must be listed in dvc.yaml.
SECTION = {name: name for name in ORDER}


def declared_outputs() -> set[str]:
    outs = set()
    for stage in STAGES.values():
        for entry in stage.get("outs", []) + stage.get("metrics", []):
            outs.add(entry if isinstance(entry, str) else next(iter(entry)))
    return outs


def path_constants() -> set[str]:
    return {str(value) for value in vars(paths).values() if isinstance(value, Path)}


def test_stage_order_and_commands():
    assert list(STAGES) == ORDER
    for name, stage in STAGES.items():
        assert stage["cmd"] == f"python -m pipelines.{name}"


def test_every_declared_path_is_defined_in_paths_module():
    constants = path_constants()
    for stage in STAGES.values():
        for dep in stage["deps"]:
            if dep.startswith("data/"):
                assert dep in constants, dep
    assert declared_outputs() <= constants


def test_every_output_path_in_paths_module_is_declared():
    outputs = declared_outputs()
    containers = {
        str(p)
        for p in (
            paths.DATA,
            paths.LANDING,
            paths.VALIDATED,
            paths.SPLITS,
            paths.MODELS,
            paths.METRICS,
            paths.REPORTS,
            paths.PLOTS,
            paths.FAILED_DATA_DOCS,  # what a failed run leaves for the user, never a stage output
            paths.TRAIN_BACKUP,  # train's resume point, deleted when training succeeds
            paths.TENSORBOARD,  # train's live logs for TensorBoard, not a pipeline result
        )
    }
    # Scoring and monitoring run after the registry, outside the training graph.
    serving_side = (f"{paths.MONITOR}/", f"{paths.SCORED}/")
    containers |= {str(paths.MONITOR), str(paths.SCORED)}
    for constant in path_constants() - containers:
        if not constant.startswith("data/") or constant.startswith(serving_side):
            continue
        covered = constant in outputs or any(constant.startswith(out + "/") for out in outputs)
        assert covered, f"{constant} is in pipelines/paths.py but no stage declares it"


def pipeline_imports(module: str) -> set[str]:
    tree = ast.parse((REPO / "pipelines" / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "pipelines":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("pipelines."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("pipelines.")}
    return found


# Imports that run only once a stage has failed (recording the failure in MLflow), so they
# cannot change its outputs and must not invalidate every stage when they change.
FAILURE_ONLY = {("stage", "tracking")}
# Checks that refuse to start a stage (locks, parent death, input hashes) but never change what
# it writes: a change to them must not rerun every stage either.
GUARD_ONLY = {("stage", "run_guard"), ("stage", "integrity")}


def closure(roots: list[str]) -> set[str]:
    seen, todo = set(), list(roots)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += [
                m for m in pipeline_imports(module) if (module, m) not in FAILURE_ONLY | GUARD_ONLY
            ]
    return seen


@pytest.mark.parametrize("name", ORDER)
def test_code_deps_are_exactly_the_modules_the_stage_uses(name):
    declared = {Path(d).stem for d in STAGES[name]["deps"] if d.startswith("pipelines/")}
    assert declared == closure([name, *LOADED_BY_PATH.get(name, [])])


@pytest.mark.parametrize("name", ORDER)
def test_params_are_listed_key_by_key_and_complete(name):
    listed = set(STAGES[name]["params"])
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key in listed:
        node = params
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{name}: {key} is not in params.yaml"
            node = node[part]
    field = {"validate": "validate_", "register": "register_"}.get(SECTION[name], SECTION[name])
    section_model = config.Params.model_fields[field].annotation
    for key in section_model.model_fields:
        assert f"{SECTION[name]}.{key}" in listed, (
            f"{name} ignores {SECTION[name]}.{key} in dvc.yaml"
        )


def test_plots_point_at_declared_outputs():
    for plot in DVC["plots"]:
        target = plot if isinstance(plot, str) else next(iter(plot))
        assert target in declared_outputs()


@pytest.mark.parametrize("name", ORDER)
def test_outputs_persist_so_a_failed_stage_keeps_the_previous_ones(name):
    for entry in STAGES[name].get("outs", []) + STAGES[name].get("metrics", []):
        assert isinstance(entry, dict), f"{name}: {entry} needs persist: true"
        assert next(iter(entry.values())).get("persist") is True, f"{name}: {entry}"
