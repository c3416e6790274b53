"""Rebalance: handle class imbalance on the training split only.

Only the training split is ever read here, so no validation or test row can leak into the
synthetic neighbours. The strategy is the one the tune stage hands over (``TunedConfig``:
``rebalance.strategy`` unless tuning chose another); how it is applied lives in
``pipelines.rebalancing``. The class weights training acts on are the ``ClassWeights``
contract, written on every run (``null`` unless the strategy is ``class_weight``); the report
repeats them only for people and MLflow.
"""

from __future__ import annotations

import logging

from pipelines import paths
from pipelines.config import load_params
from pipelines.contracts import ClassWeights, TunedConfig
from pipelines.io import read_parquet, write_parquet_atomic
from pipelines.rebalancing import rebalance
from pipelines.reports import stage_headline, write_results
from pipelines.schema import load_enforced_schema
from pipelines.stage import run_stage

log = logging.getLogger(__name__)


def main() -> None:
    params = load_params()
    schema = load_enforced_schema()
    train = read_parquet(paths.SPLIT_TRAIN)
    cfg = TunedConfig.load().rebalance_params(params.rebalance)
    out, report = rebalance(train, schema, cfg, params.seed)
    write_parquet_atomic(out, paths.REBALANCED_TRAIN)
    ClassWeights(weights=report.get("class_weight")).write()
    metrics = stage_headline("rebalance", rows=len(out))
    write_results(report, paths.REBALANCE_REPORT, metrics, paths.REBALANCE_METRICS)
    log.info("rebalance (%s): %s -> %s", cfg.strategy, report["before"], report["after"])


if __name__ == "__main__":
    run_stage("rebalance", main)
