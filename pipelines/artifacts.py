"""Integrity of registered models: a SHA-256 of every file, recorded at registration and
verified before any load.

Loading a registered model runs code from the artifact store (its ``serving.py``, see
``pipelines.serving``), so whoever can write that store could run code in every process that
loads it. Register records the SHA-256 of every file of the logged model as a manifest: on the
model version (tag ``artifact_manifest``, kept in the tracking database, which a writer of the
artifact store cannot change), and in the run (tag ``artifact_manifest_sha256`` and artifact
``model_manifest.json``, for people). Every load the pipeline does goes through
:func:`verified_copy` / :func:`load_verified_model`: download the version into a private
folder, compare every file with the manifest (a changed, missing or extra file is refused,
named), and load from that verified copy, never from the store again.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import PipelineError

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

    from mlflow import MlflowClient

MANIFEST_TAG = "artifact_manifest"
MANIFEST_DIGEST_TAG = "artifact_manifest_sha256"
# MLflow's client writes this into every download of a registered version (name and version);
# it never comes from the store, so it is not part of what is verified.
CLIENT_WRITTEN = frozenset({"registered_model_meta"})
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/@]+))$")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest(folder: Path) -> dict[str, str]:
    """Relative path (posix) -> SHA-256 of every file under ``folder``; links are refused."""
    hashes = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink():
            raise PipelineError(f"{relative}: a symbolic link in a model's files; refusing it")
        if path.is_file() and relative not in CLIENT_WRITTEN:
            hashes[relative] = file_sha256(path)
    return hashes


def manifest_text(hashes: dict[str, str]) -> str:
    """The manifest as one canonical JSON line (the tag's value)."""
    return json.dumps(hashes, sort_keys=True, separators=(",", ":"))


def manifest_digest(hashes: dict[str, str]) -> str:
    return hashlib.sha256(manifest_text(hashes).encode()).hexdigest()


def verify(folder: Path, expected: dict[str, str], label: str) -> None:
    """Raise, naming each file, unless ``folder`` holds exactly the files of ``expected``."""
    found = manifest(folder)
    changed = sorted(f for f in expected if f in found and found[f] != expected[f])
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if changed or missing or extra:
        problems = [
            f"{kind} {', '.join(files)}"
            for kind, files in (
                ("modified:", changed),
                ("missing:", missing),
                ("unexpected:", extra),
            )
            if files
        ]
        raise PipelineError(
            f"{label}: files differ from the SHA-256 manifest recorded at registration "
            f"({'; '.join(problems)}); refusing to load it"
        )


def registry_version(client: MlflowClient, model_uri: str) -> tuple[str, str]:
    """``models:/<name>/<version>`` or ``models:/<name>@<alias>`` -> (name, version)."""
    from mlflow.exceptions import MlflowException

    match = _REGISTRY_URI.match(model_uri)
    if match is None:
        raise PipelineError(
            f"{model_uri}: only registered models (models:/<name>/<version> or "
            "models:/<name>@<alias>) can be verified and loaded"
        )
    name, version, alias = match.group("name", "version", "alias")
    if version is not None:
        return name, version
    try:
        return name, str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        raise PipelineError(f"registered model {name!r} has no @{alias} version") from exc


def download_verified(
    model_uri: str, destination: Path, client: MlflowClient | None = None
) -> Path:
    """Download a registered version into ``destination`` and check every file against the
    manifest recorded on the version; returns the model's folder there."""
    import mlflow
    from pipelines import tracking

    client = client or tracking.client()
    name, version = registry_version(client, model_uri)
    label = f"registered model {name!r} v{version}"
    tags = client.get_model_version(name, version).tags
    if MANIFEST_TAG not in tags:
        raise PipelineError(
            f"{label} carries no {MANIFEST_TAG} tag (not registered by this pipeline, or "
            "before artifact hashing); refusing to load it"
        )
    expected = json.loads(tags[MANIFEST_TAG])
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{version}", dst_path=str(destination)
    )
    verify(Path(local), expected, label)
    return Path(local)


@contextmanager
def verified_copy(model_uri: str, client: MlflowClient | None = None) -> Iterator[Path]:
    """A private local copy of a registered version whose files match its manifest."""
    with tempfile.TemporaryDirectory(prefix="verified-model-") as scratch:
        yield download_verified(model_uri, Path(scratch), client)


def load_verified_model(model_uri: str, client: MlflowClient | None = None) -> PyFuncModel:
    """``mlflow.pyfunc.load_model`` of a registered version, after :func:`verified_copy`.

    The served model reads its files into memory when it loads, so the copy is removed after."""
    import mlflow

    with verified_copy(model_uri, client) as local:
        return mlflow.pyfunc.load_model(str(local))
