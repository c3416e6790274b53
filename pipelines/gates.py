"""One shape for every gate check, rendered one way in logs, summaries and MLflow tags.

A gate (drift, quantization, champion, ...) is a list of checks; each check measures one
number against one limit and says why it passed or failed in words that name the culprit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from pipelines.mlflow_keys import mlflow_key


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    measured: float
    limit: float
    reason: str


def at_most(name: str, measured: float, limit: float, reason: str) -> GateResult:
    """A check that passes while ``measured <= limit``."""
    return GateResult(name, bool(measured <= limit), float(measured), float(limit), reason)


def at_least(name: str, measured: float, limit: float, reason: str) -> GateResult:
    """A check that passes while ``measured >= limit``."""
    return GateResult(name, bool(measured >= limit), float(measured), float(limit), reason)


def more_than(name: str, measured: float, limit: float, reason: str) -> GateResult:
    """A check that passes only while ``measured > limit``: reaching the limit is not enough."""
    return GateResult(name, bool(measured > limit), float(measured), float(limit), reason)


def passed(results: Sequence[GateResult]) -> bool:
    return all(result.passed for result in results)


def failures(results: Sequence[GateResult]) -> list[GateResult]:
    return [result for result in results if not result.passed]


def explain(results: Sequence[GateResult]) -> str:
    """The failed checks' reasons when any failed, else every check's reason, on one line."""
    shown = failures(results) or list(results)
    return "; ".join(result.reason for result in shown)


def as_records(results: Sequence[GateResult]) -> list[dict]:
    return [asdict(result) for result in results]


def as_tags(gate: str, results: Sequence[GateResult]) -> dict[str, str]:
    """MLflow tags, one per check: ``gate.<gate>.<check>`` -> "pass|fail: <reason>" (a check
    named after a column, such as ``disparity_<column>``, under a key MLflow accepts)."""
    return {
        mlflow_key(f"gate.{gate}.{result.name}"): (
            f"{'pass' if result.passed else 'fail'}: {result.reason}"
        )
        for result in results
    }
