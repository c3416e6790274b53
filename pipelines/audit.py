"""The audit record of alias moves: append-only, one MLflow run per move.

Each move of an alias is a run in the experiment ``<model>.audit``, opened *before* the alias
moves (the intent: from, to, reason, the gate's decision and comparison, the pipeline run,
who) and finished once it has moved. The event lives in the run's params, which MLflow never
lets anyone change once logged, so neither a model-tag edit nor a later pipeline run can
rewrite it (the old ``audit.NNNNN`` model tags could be overwritten by anyone allowed to tag
the model; they are still read, as history before this record existed). A run is:

- RUNNING with ``audit.state=pending``: the intent, alias not yet known to have moved;
- FINISHED (``done``): the move happened; history is exactly these runs, by ``sequence``;
- FAILED (``abandoned``): the move was given up; it never appears in history.

Intents are only written under the registry lock (``pipelines.registry_lock``), so a pending
one seen by the lock's holder belongs to a process that died: ``pipelines.reconcile`` settles
it. ``who`` is the identity the tracking server authenticated, when it authenticates.
"""

from __future__ import annotations

import getpass
import json
import logging
import time
from typing import TYPE_CHECKING

from pipelines import tracking

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

STATE_TAG = "audit.state"
LEGACY_PREFIX = "audit."  # the registered model's tags of the earlier, tag-based trail
# Params holding JSON; every other field is a string ("" for "none").
JSON_FIELDS = ("metrics", "comparison")
FIELDS = (
    "sequence",
    "time",
    "action",
    "alias",
    "from_version",
    "to_version",
    "decision",
    "reason",
    "run_id",
    "git_commit",
    "user",
    "user_source",
    *JSON_FIELDS,
)


def experiment_name(model: str) -> str:
    return f"{model}.audit"


def begin(client: MlflowClient, model: str, event: dict) -> str:
    """Record the intent of a move; returns its id. Call with the registry lock held."""
    from mlflow.entities import Param

    experiment = tracking.experiment_id(client, experiment_name(model))
    sequence = _count(client, experiment) + 1
    user, source = identity()
    record = event | {
        "sequence": f"{sequence:08d}",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "user": user,
        "user_source": source,
    }
    name = f"{event['action']} @{event['alias']} v{event['from_version'] or '-'} -> v{event['to_version']}"
    run = client.create_run(experiment, run_name=name, tags={STATE_TAG: "pending"})
    params = [Param(key, _param(record.get(key))) for key in FIELDS]
    client.log_batch(run.info.run_id, params=params)
    return run.info.run_id


def finish(client: MlflowClient, intent: str, note: str | None = None) -> None:
    if note:
        client.set_tag(intent, "audit.reconciled", note)
    client.set_tag(intent, STATE_TAG, "done")
    client.set_terminated(intent, status="FINISHED")


def abandon(client: MlflowClient, intent: str, why: str) -> None:
    client.set_tag(intent, "audit.abandoned", why[:4000])
    client.set_tag(intent, STATE_TAG, "abandoned")
    client.set_terminated(intent, status="FAILED")


def pending(client: MlflowClient, model: str) -> list[tuple[str, dict | None]]:
    """Intents not settled yet, oldest first: (id, event), event None when its params never
    made it (a crash between opening the run and logging them)."""
    runs = _runs(client, model, "attributes.status = 'RUNNING'")
    return [(run.info.run_id, _event(run) if run.data.params else None) for run in runs]


def events(client: MlflowClient, model: str) -> list[dict]:
    """Every alias move of ``model`` that happened, oldest first."""
    legacy = _legacy(client, model)
    done = [_event(run) for run in _runs(client, model, "attributes.status = 'FINISHED'")]
    return legacy + sorted(done, key=lambda e: e["sequence"])


def identity() -> tuple[str, str]:
    """Who moves the alias, and how that is known: the user the tracking server
    authenticated (``/users/current`` of MLflow's basic-auth app) or, where the store does
    not authenticate, the operating-system user, which the caller could forge."""
    uri = tracking.tracking_uri()
    if uri.startswith(("http://", "https://")):
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        try:
            response = http_request(
                get_default_host_creds(uri), "/api/2.0/mlflow/users/current", "GET", max_retries=0
            )
            if response.status_code == 200:
                return str(response.json()["user"]["username"]), "mlflow-auth"
        except Exception as exc:  # noqa: BLE001 - a server without auth has no such endpoint
            log.debug("no authenticated identity from %s: %s", tracking.display_uri(), exc)
    try:
        return getpass.getuser(), "os-user-unverified"
    except (KeyError, OSError):
        return "unknown", "none"


def _runs(client: MlflowClient, model: str, filter_string: str) -> list:
    experiment = client.get_experiment_by_name(experiment_name(model))
    if experiment is None:
        return []
    found: list = []
    token = None
    while True:
        page = client.search_runs(
            [experiment.experiment_id], filter_string, max_results=1000, page_token=token
        )
        found.extend(page)
        token = page.token
        if not token:
            return sorted(found, key=lambda run: run.data.params.get("sequence", ""))


def _count(client: MlflowClient, experiment: str) -> int:
    from mlflow.entities import ViewType

    count, token = 0, None
    while True:
        page = client.search_runs(
            [experiment], "", run_view_type=ViewType.ALL, max_results=1000, page_token=token
        )
        count += len(page)
        token = page.token
        if not token:
            return count


def _param(value) -> str:
    if isinstance(value, dict):
        value = json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)[:6000]


def _event(run) -> dict:
    params = run.data.params
    event: dict = {key: params.get(key, "") for key in FIELDS}
    for key in JSON_FIELDS:
        event[key] = json.loads(event[key]) if event[key] else {}
    for key in ("from_version", "decision", "run_id"):
        event[key] = event[key] or None
    event["intent"] = run.info.run_id
    return event


def _legacy(client: MlflowClient, model: str) -> list[dict]:
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(model).tags
    except MlflowException:
        return []
    keys = sorted(k for k in tags if k.startswith(LEGACY_PREFIX))
    return [json.loads(tags[key]) | {"sequence": "", "user_source": "legacy-tag"} for key in keys]
