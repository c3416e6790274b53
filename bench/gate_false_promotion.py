"""How often the champion gate promotes a model that is no better: synthetic equal-quality pairs.

Each dataset draws labels and a shared latent score (the rows' own difficulty); champion and
challenger each add their own noise of the same size, so they are two different score
vectors of the same quality and neither should replace the other. Over many seeds and a few
split sizes it prints the share promoted by

- the old point-estimate gate (challenger PR-AUC > champion PR-AUC, ``min_delta`` 0),
- the paired gate with ``require_improvement: false`` (non-inferiority within the margin and
  a point gain), and
- the paired gate as params.yaml sets it (by default: better with confidence),

and, for scale, how often each promotes a truly better challenger (half the noise).
Guardrails (recall, calibration) are left out: only the PR-AUC decision is measured.

    python -m bench.gate_false_promotion [--seeds 200] [--samples 1000]
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from pipelines.champion_gate import GateMetrics, compare, gate_decision
from pipelines.config import load_params

# (rows, positive rate): from a test split with a handful of positives to a comfortable one.
SPLITS = ((200, 0.05), (1000, 0.02), (1000, 0.1), (5000, 0.02))
NOISE = 1.0

log = logging.getLogger(__name__)


def synthetic(seed: int, rows: int, rate: float, challenger_noise: float) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < rate).astype(int)
    labels[:2] = [1, 0]
    latent = 1.5 * labels + rng.normal(size=rows)
    challenger = latent + rng.normal(scale=challenger_noise, size=rows)
    champion = latent + rng.normal(scale=NOISE, size=rows)
    return labels, challenger, champion


def promotions(seeds: int, rows: int, rate: float, challenger_noise: float, cfgs: dict) -> dict:
    """Share of seeds each gate promotes the challenger."""
    counts = dict.fromkeys(["point", *cfgs], 0)
    for seed in range(seeds):
        labels, challenger, champion = synthetic(seed, rows, rate, challenger_noise)
        paired = None
        for name, cfg in cfgs.items():
            paired = compare(labels, challenger, champion, cfg, seed)
            ours, theirs = GateMetrics(paired.pr_auc.a, 1, 0), GateMetrics(paired.pr_auc.b, 1, 0)
            counts[name] += gate_decision(ours, theirs, cfg, paired).promote
        counts["point"] += paired.pr_auc.difference > 0
    return {name: count / seeds for name, count in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--samples", type=int, default=None, help="default: params.yaml's")
    args = parser.parse_args()
    cfg = load_params().register_
    cfg = cfg.model_copy(
        update={
            "max_recall_drop": 1.0,
            "max_ece_increase": 1.0,
            "min_delta": 0.0,
            **({"bootstrap_samples": args.samples} if args.samples else {}),
        }
    )
    cfgs = {
        "non-inferior": cfg.model_copy(update={"require_improvement": False}),
        "improvement": cfg.model_copy(update={"require_improvement": True}),
    }
    print(
        f"confidence {cfg.confidence}, margin {cfg.non_inferiority_margin}, "
        f"{cfg.bootstrap_samples} resamples, {args.seeds} seeds per row"
    )
    header = "rows  positives  model   | point gate | paired, no improvement | paired, improvement"
    print(header)
    print("-" * len(header))
    for rows, rate in SPLITS:
        for kind, noise in (("equal", NOISE), ("better", NOISE / 2)):
            shares = promotions(args.seeds, rows, rate, noise, cfgs)
            print(
                f"{rows:>5} {round(rows * rate):>9}  {kind:<7} | {shares['point']:>10.1%} | "
                f"{shares['non-inferior']:>22.1%} | {shares['improvement']:>19.1%}"
            )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
