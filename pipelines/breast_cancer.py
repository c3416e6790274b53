"""Write scikit-learn's bundled breast-cancer data as a CSV landing file (no download).

A small real dataset (569 rows, 212 positives, 30 numeric features) for trying the pipeline's
small-data behaviour. The positive class is ``malignant`` (scikit-learn codes it 0): it is the
class a screening model must find, so recall and PR-AUC are about it. Point the pipeline at it
with the ``data:`` keys only:

    python -m pipelines.breast_cancer            # writes data/landing_breast_cancer/breast_cancer.csv
    # params.yaml: data: {source: data/landing_breast_cancer, target: diagnosis,
    #                     positive_label: malignant}; register.model_name: breast-cancer
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from pipelines.io import atomic_path
from pipelines.stage import run_stage

log = logging.getLogger(__name__)

LANDING = Path("data/landing_breast_cancer")
TARGET = "diagnosis"


def breast_cancer_frame() -> pd.DataFrame:
    """The bundled data with snake_case feature names and a ``diagnosis`` label column."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    features = bunch.data.rename(columns=lambda name: name.replace(" ", "_"))
    labels = bunch.target.map({0: "malignant", 1: "benign"})
    return features.assign(**{TARGET: labels})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=LANDING)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "breast_cancer.csv"
    with atomic_path(target) as tmp:
        breast_cancer_frame().to_csv(tmp, index=False)
    log.info("wrote %s (target %r, positive label 'malignant')", target, TARGET)


if __name__ == "__main__":
    run_stage("breast_cancer", main, record_failure=False)
