"""Test PR-AUC, ROC-AUC and training time of one_hot against embedding, side by side.

Everything but ``train.categorical_encoding`` is fixed: the default data (the simulator with
params.yaml's settings), the same split, rebalance, augment, model params (params.yaml) and
seed. Per seed both encodings train on the same augmented training split, one after the
other, in this one process; the threshold-free metrics come from the untouched test split.

    python -m bench.categorical_encoding [--seeds 3]
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from bench.common import default_params, simulated
from pipelines.augment import augment
from pipelines.contracts import ClassWeights
from pipelines.features import ENCODINGS
from pipelines.rebalancing import rebalance
from pipelines.split import split
from pipelines.tf_runtime import predict_proba
from pipelines.train import train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3, help="repeats: split, model and sampler")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    params = default_params()
    frame, schema = simulated(params)
    seeds = range(params.seed, params.seed + args.seeds)
    results: dict[str, dict[str, list[float]]] = {
        name: {"pr_auc": [], "roc_auc": [], "seconds": [], "epochs": [], "features": []}
        for name in ENCODINGS
    }
    levels = {}
    for seed in seeds:
        train_split, val, test = split(frame, schema, params.split, seed)
        rebalanced, report = rebalance(train_split, schema, params.rebalance, seed)
        augmented, _ = augment(rebalanced, schema, params.augment, seed)
        labels = test[schema.target].to_numpy()
        for name in ENCODINGS:
            cfg = params.train.model_copy(update={"categorical_encoding": name})
            weights = ClassWeights(weights=report.get("class_weight")).for_keras()
            result = train(augmented, val, schema, cfg, seed, weights)
            scores = predict_proba(result.model, result.transform.transform(test))
            row = results[name]
            row["pr_auc"].append(average_precision_score(labels, scores))
            row["roc_auc"].append(roc_auc_score(labels, scores))
            row["seconds"].append(result.report["train_seconds"])
            row["epochs"].append(result.report["epochs_run"])
            row["features"].append(result.report["features"])
            levels = result.report["embedding_dims"] or levels
            print(
                f"seed {seed} {name}: PR-AUC {row['pr_auc'][-1]:.4f} ROC-AUC "
                f"{row['roc_auc'][-1]:.4f} {row['seconds'][-1]:.1f} s "
                f"({row['epochs'][-1]} epochs)",
                flush=True,
            )
    print(
        f"\n{len(frame)} rows; train params as in params.yaml; mean +- sd over seeds "
        f"{list(seeds)}; embedding widths {levels}"
    )
    print(
        "| encoding | input columns | test PR-AUC | test ROC-AUC | train seconds | epochs | "
        "ms per epoch |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, row in results.items():
        per_epoch = 1000 * np.sum(row["seconds"]) / np.sum(row["epochs"])
        print(
            f"| {name} | {row['features'][0]} | {spread(row['pr_auc'])} | "
            f"{spread(row['roc_auc'])} | {spread(row['seconds'], 1)} | "
            f"{np.mean(row['epochs']):.1f} | {per_epoch:.0f} |"
        )


def spread(values: list[float], digits: int = 3) -> str:
    return f"{np.mean(values):.{digits}f} +- {np.std(values):.{digits}f}"


if __name__ == "__main__":
    main()
