"""Test PR-AUC and ROC-AUC per rebalancing strategy, side by side, on two datasets.

Everything but the strategy is fixed: the same split, model, params (params.yaml) and seed.
The threshold-free metrics come from the untouched test split.

    python -m bench.rebalance_strategies [--strategies none,class_weight,...]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from bench.common import breast_cancer, default_params, simulated
from pipelines.augment import augment
from pipelines.contracts import ClassWeights
from pipelines.rebalancing import rebalance
from pipelines.split import split
from pipelines.tf_runtime import predict_proba
from pipelines.train import train

DEFAULT = "none,class_weight,smote,smote_nc,adasyn,smote_tomek"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategies", default=DEFAULT)
    parser.add_argument("--seeds", type=int, default=3, help="repeats: split, model and sampler")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    params = default_params()
    seeds = range(params.seed, params.seed + args.seeds)
    rows = []
    for name, (frame, schema) in {
        "simulated fraud (2% positive)": simulated(params),
        "breast cancer (malignant thinned to 10%)": breast_cancer(params),
    }.items():
        for strategy in args.strategies.split(","):
            if strategy == "smote_nc" and not schema.categorical:
                rows.append((name, strategy, "n/a (no categorical features)", "n/a", "n/a"))
                continue
            cfg = params.rebalance.model_copy(update={"strategy": strategy})
            pr_aucs, roc_aucs, started = [], [], time.perf_counter()
            for seed in seeds:
                train_split, val, test = split(frame, schema, params.split, seed)
                rebalanced, report = rebalance(train_split, schema, cfg, seed)
                augmented, _ = augment(rebalanced, schema, params.augment, seed)
                weights = ClassWeights(weights=report.get("class_weight")).for_keras()
                result = train(augmented, val, schema, params.train, seed, weights)
                scores = predict_proba(result.model, result.transform.transform(test))
                labels = test[schema.target].to_numpy()
                pr_aucs.append(average_precision_score(labels, scores))
                roc_aucs.append(roc_auc_score(labels, scores))
            seconds = (time.perf_counter() - started) / len(seeds)
            rows.append((name, strategy, spread(pr_aucs), spread(roc_aucs), f"{seconds:.1f}"))
            print(" | ".join(rows[-1]), flush=True)
    print(f"\nmean +- sd over seeds {list(seeds)}; rebalance params as in params.yaml")
    print("| dataset | strategy | test PR-AUC | test ROC-AUC | seconds per run |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def spread(values: list[float]) -> str:
    return f"{np.mean(values):.3f} +- {np.std(values):.3f}"


if __name__ == "__main__":
    main()
