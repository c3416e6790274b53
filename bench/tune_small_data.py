"""Does tuning help on a small real dataset? Breast cancer, untuned vs tuned, within a budget.

Splits scikit-learn's breast-cancer data (malignant positive) 60/20/20, stratified and seeded,
runs the tune stage's core (``pipelines.tune.tune``) with params.yaml's train, rebalance and
tune sections (``tune.enabled`` forced on, ``--trials`` trials), and prints the untuned and the
chosen configuration's validation PR-AUC (what tune decides on) and, reported only, each one's
test PR-AUC (one model trained per configuration, as in the search).

    python -m bench.tune_small_data [--trials 12] [--seed 42]
"""

from __future__ import annotations

import argparse
import logging

from sklearn.model_selection import train_test_split

from pipelines.breast_cancer import TARGET, breast_cancer_frame
from pipelines.config import DataParams, load_params
from pipelines.contracts import TunedConfig
from pipelines.fitting import fit_model
from pipelines.metrics import pr_auc
from pipelines.rebalancing import rebalance
from pipelines.schema import infer_schema
from pipelines.tune import tune

log = logging.getLogger(__name__)


def test_pr_auc(config: TunedConfig, train, val, test, schema, params, seed: int) -> float:
    resampled, report = rebalance(train, schema, config.rebalance_params(params.rebalance), seed)
    weights = report.get("class_weight")
    fitted = fit_model(
        resampled,
        schema,
        config.train_params(params.train),
        seed,
        val_frame=val,
        class_weight={int(k): v for k, v in weights.items()} if weights else None,
    )
    return pr_auc(test[TARGET].to_numpy(), fitted.predict(test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    params = load_params()
    frame = breast_cancer_frame()
    frame[TARGET] = (frame[TARGET] == "malignant").astype("int64")
    data = DataParams(source="bench", target=TARGET, positive_label=1)
    schema = infer_schema(frame, data, 50, 3.0, 100)
    rest, test = train_test_split(
        frame, test_size=0.2, stratify=frame[TARGET], random_state=args.seed
    )
    train, val = train_test_split(
        rest, test_size=0.25, stratify=rest[TARGET], random_state=args.seed
    )
    cfg = params.tune.model_copy(update={"enabled": True, "max_trials": args.trials})
    result = tune(train, val, schema, cfg, params.train, params.rebalance, args.seed)
    report = result.report
    untuned = TunedConfig.from_params(params.train, params.rebalance)
    print(
        f"trials {report['trials']} (pruned {report['trials_pruned']}), {report['seconds']:.0f} s"
    )
    for name, config, val_value in (
        ("untuned", untuned, report["untuned_val_pr_auc"]),
        ("chosen", result.config, report["best_val_pr_auc"]),
    ):
        test_value = test_pr_auc(config, train, val, test, schema, params, args.seed)
        print(
            f"{name:8s} val PR-AUC {val_value:.4f}  test PR-AUC {test_value:.4f}  "
            f"{config.model_dump(exclude={'source'})}"
        )
    print("kept untuned" if report["kept_untuned"] else "tuned configuration chosen")


if __name__ == "__main__":
    main()
