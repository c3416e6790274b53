"""The registry's command line: a registered model's alias history, versions and rollback.

Commands (the model name defaults to ``register.model_name`` in params.yaml)::

    python -m pipelines.registry history    # every alias change, oldest first
    python -m pipelines.registry versions   # PR-AUC per version, champion marked
    python -m pipelines.registry rollback   # champion back to the previous champion
    python -m pipelines.registry checkout 3 [--into DIR]   # v3's code, params and data

Only parsing and printing live here; the gate, the audited alias moves, the history and the
rollback are in ``pipelines.promotion``, the checkout in ``pipelines.checkout``. Every
command first settles, under the registry lock, what a killed register or rollback left
(``pipelines.reconcile``); ``history``, ``versions`` and ``checkout`` skip that, with a
warning, while a register holds the lock.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pipelines import reaper, reconcile, tracking
from pipelines.checkout import checkout
from pipelines.config import load_params
from pipelines.errors import PipelineError
from pipelines.lineage import git_commit
from pipelines.promotion import history, log_audit_artifacts, rollback, versions_table
from pipelines.registry_lock import held
from pipelines.stage import run_stage

log = logging.getLogger(__name__)

# The --help description, as it read before the logic moved to pipelines.promotion.
DESCRIPTION = "The registered model's aliases, their audit trail, and the one-step rollback."


def format_history(events: list[dict]) -> str:
    """The table ``history`` prints: one line per alias move, oldest first."""
    lines = [f"{'time':<21}{'action':<11}{'alias':<12}{'from':>5} {'to':>4}  reason"]
    for event in events:
        lines.append(
            f"{event['time']:<21}{event['action']:<11}{event['alias']:<12}"
            f"{'v' + event['from_version'] if event['from_version'] else '-':>5} "
            f"{'v' + event['to_version']:>4}  {event['reason']}"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines.registry", description=DESCRIPTION)
    parser.add_argument("command", choices=["history", "versions", "rollback", "checkout"])
    parser.add_argument("version", nargs="?", help="checkout: the version to restore")
    parser.add_argument("--into", type=Path, help="checkout: default checkouts/<model>-v<N>")
    parser.add_argument("--model-name", help="default: register.model_name in params.yaml")
    args = parser.parse_args(argv)
    if (args.command == "checkout") != (args.version is not None):
        parser.error("a version is given with checkout, and only with it")
    params = load_params()
    name = args.model_name or params.register_.model_name
    client = tracking.client()
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise PipelineError(
                f"registered model {name!r} not found at {tracking.display_uri()}"
            ) from exc
        raise tracking.mlflow_error(exc, f"reading registered model {name!r}") from exc
    cfg = params.register_
    experiment = tracking.experiment_id(client, cfg.experiment_name)
    if args.command != "rollback":
        try:
            with held(client, name, wait_s=0, stale_s=cfg.lock_stale_s):
                reconcile.settle(client, name, experiment)
        except PipelineError as exc:
            log.warning("not settling interrupted moves: %s", exc)
        if args.command == "history":
            sys.stdout.write(format_history(history(client, name)))
        elif args.command == "checkout":
            into = args.into or Path("checkouts") / f"{name}-v{args.version}"
            checkout(client, name, args.version, into)
            sys.stdout.write(
                f"{name} v{args.version} restored into {into}: cd there and dvc repro\n"
            )
        else:
            sys.stdout.write(versions_table(client, name).to_string(index=False) + "\n")
        return
    with held(client, name, cfg.lock_wait_s, cfg.lock_stale_s):
        reconcile.settle(client, name, experiment)
        run_id = reaper.open_command_run(client, experiment, f"rollback-{name}")
        try:
            event = rollback(client, name, git_commit(), run_id)
            log_audit_artifacts(client, name, run_id)
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id)
    sys.stdout.write(f"{name} @champion: v{event['from_version']} -> v{event['to_version']}\n")


if __name__ == "__main__":
    run_stage("registry", main, record_failure=False)
