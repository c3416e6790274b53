"""Test PR-AUC and ROC-AUC per rebalancing strategy, side by side, on two datasets.

Everything but the strategy is fixed: the same split, model, params (params.yaml) and seed.
The threshold-free metrics come from the untouched test split.

    python bench/rebalance_strategies.py [--strategies none,class_weight,...]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402

from bench.common import breast_cancer, default_params, simulated  # noqa: E402
from pipelines.augment import augment  # noqa: E402
from pipelines.rebalance import rebalance  # noqa: E402
from pipelines.split import split  # noqa: E402
from pipelines.tf_runtime import predict_proba  # noqa: E402
from pipelines.train import train  # noqa: E402

DEFAULT = "none,class_weight,smote,smote_nc,adasyn,smote_tomek"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategies", default=DEFAULT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    params = default_params()
    rows = []
    for name, (frame, schema) in {
        "simulated fraud": simulated(params),
        "breast cancer": breast_cancer(params),
    }.items():
        train_split, val, test = split(frame, schema, params.split, params.seed)
        for strategy in args.strategies.split(","):
            cfg = params.rebalance.model_copy(update={"strategy": strategy})
            if strategy == "smote_nc" and not schema.categorical:
                rows.append((name, strategy, None, None, None, "no categorical features"))
                continue
            started = time.perf_counter()
            rebalanced, report = rebalance(train_split, schema, cfg, params.seed)
            augmented, _ = augment(rebalanced, schema, params.augment, params.seed)
            result = train(
                augmented, val, schema, params.train, params.seed, report.get("class_weight")
            )
            scores = predict_proba(result.model, result.transform.transform(test))
            labels = test[schema.target].to_numpy()
            rows.append(
                (
                    name,
                    strategy,
                    average_precision_score(labels, scores),
                    roc_auc_score(labels, scores),
                    time.perf_counter() - started,
                    "",
                )
            )
            print(
                f"{name:16s} {strategy:14s} PR-AUC {rows[-1][2]:.4f} ROC-AUC {rows[-1][3]:.4f}",
                flush=True,
            )
    print("\n| dataset | strategy | test PR-AUC | test ROC-AUC | seconds |")
    print("|---|---|---|---|---|")
    for name, strategy, pr_auc, roc_auc, seconds, note in rows:
        if pr_auc is None:
            print(f"| {name} | {strategy} | n/a | n/a | {note} |")
        else:
            print(f"| {name} | {strategy} | {pr_auc:.4f} | {roc_auc:.4f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
