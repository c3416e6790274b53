"""Values one stage hands to a later one: declared DVC outputs with a typed loader.

A metrics file is for people and ``dvc metrics``; a value that a later stage *acts on* is a
contract instead. Each contract is a small JSON file at a fixed path (``pipelines.paths``),
declared as an output of the stage that writes it and as a dependency of each stage that
reads it, so DVC reruns the readers when it changes. Loading validates its shape, and a
missing or stale file names the path and the stage that writes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines import paths
from pipelines.config import RebalanceParams, RebalanceStrategy, TrainParams
from pipelines.errors import PipelineError
from pipelines.io import write_json_atomic


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    PATH: ClassVar[Path]
    WRITTEN_BY: ClassVar[str]

    def write(self) -> None:
        write_json_atomic(self.model_dump(mode="json"), self.PATH)

    @classmethod
    def load(cls) -> Self:
        path = cls.PATH
        if not path.exists():
            raise PipelineError(
                f"{path}: missing; run the {cls.WRITTEN_BY} stage first (dvc repro)"
            )
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except (ValueError, ValidationError) as exc:
            first = exc.errors()[0] if isinstance(exc, ValidationError) else {"msg": str(exc)}
            where = ".".join(str(part) for part in first.get("loc", ())) or "file"
            raise PipelineError(
                f"{path}: {where}: {first['msg']}; rerun the {cls.WRITTEN_BY} stage (dvc repro)"
            ) from None


class DecisionThreshold(Contract):
    """The score at or above which a row is labelled positive, chosen on validation."""

    PATH: ClassVar[Path] = paths.DECISION_THRESHOLD
    WRITTEN_BY: ClassVar[str] = "evaluate"

    # Above 1 when flagging nothing is cheapest (min-cost objective on a saturated score).
    threshold: float = Field(ge=0.0)
    method: str


class ClassWeights(Contract):
    """Per-class loss weights for training; ``None`` when the rebalance strategy resamples."""

    PATH: ClassVar[Path] = paths.CLASS_WEIGHTS
    WRITTEN_BY: ClassVar[str] = "rebalance"

    weights: dict[str, float] | None

    def for_keras(self) -> dict[int, float] | None:
        return (
            {int(label): weight for label, weight in self.weights.items()} if self.weights else None
        )


class ServedVariant(Contract):
    """Which artifact serves: a TFLite variant that passed the quantization gate, or "float".

    ``tflite_file_variant`` is what ``model.tflite`` holds: the served variant, or the most
    accurate one when none passed the gate."""

    PATH: ClassVar[Path] = paths.SERVED_VARIANT
    WRITTEN_BY: ClassVar[str] = "quantize"

    serving_artifact: str
    tflite_file_variant: str | None


class TunedConfig(Contract):
    """The configuration rebalance and train use: params.yaml's values, or what tuning chose.

    Written on every run of the tune stage (with ``tune.enabled: false`` it copies params.yaml),
    so that rebalance and train always read their tunable values from one place."""

    PATH: ClassVar[Path] = paths.TUNED_CONFIG
    WRITTEN_BY: ClassVar[str] = "tune"

    source: Literal["params", "search"]
    rebalance_strategy: RebalanceStrategy
    learning_rate: float = Field(gt=0)
    hidden_units: list[int] = Field(min_length=1)
    dropout: float = Field(ge=0, lt=1)
    batch_size: int = Field(ge=1)

    TRAIN_FIELDS: ClassVar[tuple[str, ...]] = (
        "learning_rate",
        "hidden_units",
        "dropout",
        "batch_size",
    )

    @classmethod
    def from_params(cls, train: TrainParams, rebalance: RebalanceParams) -> TunedConfig:
        return cls(
            source="params",
            rebalance_strategy=rebalance.strategy,
            **{name: getattr(train, name) for name in cls.TRAIN_FIELDS},
        )

    def train_params(self, train: TrainParams) -> TrainParams:
        """``train`` with the tuned fields replaced (validated again)."""
        values = {name: getattr(self, name) for name in self.TRAIN_FIELDS}
        return TrainParams.model_validate(train.model_dump() | values)

    def rebalance_params(self, rebalance: RebalanceParams) -> RebalanceParams:
        return RebalanceParams.model_validate(
            rebalance.model_dump() | {"strategy": self.rebalance_strategy}
        )


class Disparity(Contract):
    """Per sensitive column, 1 - the lower of its recall and FPR ratios across groups (test);
    empty when ``evaluate.sensitive_columns`` is. Register's optional fairness gate reads it."""

    PATH: ClassVar[Path] = paths.DISPARITY
    WRITTEN_BY: ClassVar[str] = "evaluate"

    columns: dict[str, float]
