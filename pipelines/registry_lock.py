"""The registration lock, held on the tracking backend so that it works across machines.

DVC's lock covers one checkout; two Airflow workers, or two checkouts, register into the same
registry. The lock is a registered model named ``<model>.lock``: creating a registered model
is a compare-and-set, because the store's unique constraint on the name lets exactly one of
two concurrent creates succeed, through ``mlflow server`` as on the embedded sqlite store
(a PostgreSQL advisory lock would only be reachable by processes with a database
connection, which a pipeline behind ``mlflow server`` does not have). It is created together
with tags naming its holder (host, pid, a token) and when it was taken, and deleted on
release.

A holder killed outright leaves the lock behind. It is reaped as stale when its holder ran
on this host and its process is gone, or when it is older than ``register.lock_stale_s``
(a holder elsewhere cannot be checked for life). Reaping reads the holder's token and
deletes the lock only if the token is still the same; between that read and the delete a
new holder could in principle slip in, which only a server-side compare-and-delete would
close; it needs a crash and two reapers within milliseconds.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pipelines import reaper, tracking
from pipelines.errors import PipelineError

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

SUFFIX = ".lock"
POLL_S = 1.0


def lock_name(model: str) -> str:
    return f"{model}{SUFFIX}"


@contextmanager
def held(client: MlflowClient, model: str, wait_s: float, stale_s: float) -> Iterator[None]:
    """Hold ``<model>.lock`` for the block; wait up to ``wait_s`` seconds for it."""
    name, token = lock_name(model), uuid.uuid4().hex
    deadline = time.monotonic() + wait_s
    announced = False
    while not _try_acquire(client, name, token, stale_s):
        holder = _holder(client, name)
        if time.monotonic() >= deadline:
            raise PipelineError(
                f"registry lock {name!r} at {tracking.display_uri()} is held by "
                f"{_describe(holder)}; gave up after {wait_s:.0f} s (register.lock_wait_s)"
            )
        if not announced:
            log.info("waiting for registry lock %s, held by %s", name, _describe(holder))
            announced = True
        time.sleep(POLL_S)
    log.info("registry lock %s taken", name)
    try:
        yield
    finally:
        _release(client, name, token)


def _try_acquire(client: MlflowClient, name: str, token: str, stale_s: float) -> bool:
    """Take the lock if it is free, or held by a stale holder (reaped, then taken)."""
    if _create(client, name, token):
        return True
    holder = _holder(client, name)
    if holder is None or not _stale(holder, stale_s):
        return False
    log.warning("registry lock %s: reaping the stale lock of %s", name, _describe(holder))
    _delete_if(client, name, holder.get("lock.token"))
    return _create(client, name, token)


def _create(client: MlflowClient, name: str, token: str) -> bool:
    from mlflow.exceptions import MlflowException

    tags = {
        "lock.host": socket.gethostname(),
        "lock.pid": str(os.getpid()),
        "lock.token": token,
        "lock.taken": f"{time.time():.3f}",
    }
    try:
        client.create_registered_model(
            name, tags=tags, description="Registration lock of the retraining pipeline."
        )
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_ALREADY_EXISTS":
            return False
        raise tracking.mlflow_error(exc, f"taking the registry lock {name!r}") from exc
    return True


def _stale(holder: dict[str, str], stale_s: float) -> bool:
    if time.time() - float(holder.get("lock.taken", "0") or 0) > stale_s:
        return True
    if holder.get("lock.host") != socket.gethostname():
        return False
    pid = int(holder.get("lock.pid", "0") or 0)
    return pid != os.getpid() and not reaper.process_alive(pid)


def _holder(client: MlflowClient, name: str) -> dict[str, str] | None:
    from mlflow.exceptions import MlflowException

    try:
        return dict(client.get_registered_model(name).tags)
    except MlflowException:
        return None  # released meanwhile


def _release(client: MlflowClient, name: str, token: str) -> None:
    """Delete the lock if it is still ours; never raises (the block's own error matters)."""
    try:
        if not _delete_if(client, name, token):
            log.warning("registry lock %s was no longer ours at release (reaped as stale)", name)
    except Exception as exc:  # noqa: BLE001 - see the docstring; a stale lock is reaped later
        log.warning("could not release registry lock %s: %s", name, exc)


def _delete_if(client: MlflowClient, name: str, token: str | None) -> bool:
    from mlflow.exceptions import MlflowException

    holder = _holder(client, name)
    if holder is None or holder.get("lock.token") != token:
        return False
    try:
        client.delete_registered_model(name)
    except MlflowException:
        return False  # deleted by someone else meanwhile
    return True


def _describe(holder: dict[str, str] | None) -> str:
    if holder is None:
        return "nobody (just released)"
    taken = float(holder.get("lock.taken", "0") or 0)
    return (
        f"pid {holder.get('lock.pid', '?')} on {holder.get('lock.host', '?')} "
        f"for {time.time() - taken:.0f} s"
    )
