"""Typed models of ``params.yaml``.

Each stage reads only its own section. Every model forbids unknown keys, so a typo fails
before any work starts, and the error names the key at fault. What each key means is
documented once, in the comments of ``params.yaml``; the models here state types and bounds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from pipelines import paths
from pipelines.errors import PipelineError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# A dataset's name becomes file names (its schema, its drift reference).
DATASET_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class DataParams(Section):
    source: str = Field(description="A file, a folder of partitions, or s3://bucket/prefix")
    # Params fills it with <register.model_name>__<target> when params.yaml leaves it null; only a
    # DataParams built by hand has None (pipelines.datasets then keys on the source's name).
    name: str | None = Field(
        None, pattern=DATASET_NAME, description="The dataset's identity: owns schema, reference"
    )
    target: str = Field(min_length=1, description="Label column")
    positive_label: int | float | str | bool = Field(description="Value of the positive class")

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a file, a folder or an s3:// prefix")
        return value


class SimulateParams(Section):
    n_days: int = Field(ge=1)
    rows_per_day: int = Field(ge=10)
    fraud_rate: float = Field(gt=0, lt=0.5)
    signal_strength: float = Field(gt=0, description="How sharply features separate fraud")
    dirt_rate: float = Field(ge=0, lt=0.2, description="Share of rows given realistic defects")
    drift_per_day: float = Field(ge=0, le=1)
    file_format: Literal["parquet", "csv"]


class IngestParams(Section):
    file_format: Literal["auto", "csv", "parquet"]


class ValidateParams(Section):
    max_categories: int = Field(ge=2, description="More distinct strings than this: not a feature")
    min_rows: int = Field(ge=1)
    null_policy: Literal["impute", "drop"]
    out_of_range_policy: Literal["clip", "drop"]
    unseen_category_policy: Literal["unknown", "drop"]
    duplicate_rows: Literal["auto", "quarantine", "keep"] = Field(
        description="Exact duplicate rows: auto quarantines them only when the schema has an id"
    )
    range_margin: float = Field(ge=0, description="Inferred ranges widen by this share of span")
    pii_policy: Literal["drop", "hash"] = Field(
        description="PII columns: dropped, or hashed with the salt in $PIPELINE_PII_SALT"
    )
    drift_warn: float = Field(gt=0, description="PSI against the reference that is reported")
    drift_fail: float = Field(gt=0, description="PSI against the reference that stops the run")

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> ValidateParams:
        if self.drift_fail < self.drift_warn:
            raise ValueError("drift_fail must be at least drift_warn")
        return self


class SplitParams(Section):
    method: Literal["hash", "stratified", "out_of_time"]
    val_size: float = Field(gt=0, lt=0.5)
    test_size: float = Field(gt=0, lt=0.5)
    time_column: str | None = Field(description="out_of_time: null means the schema's timestamp")
    group_column: str | None = Field(description="hash, stratified: no group spans two splits")

    @model_validator(mode="after")
    def _consistent(self) -> SplitParams:
        if self.val_size + self.test_size >= 0.8:
            raise ValueError("val_size + test_size must leave at least 20% for training")
        if self.method == "out_of_time" and self.group_column:
            raise ValueError("group_column applies to methods 'hash' and 'stratified' only")
        return self


RebalanceStrategy = Literal[
    "none",
    "class_weight",
    "smote",
    "smote_nc",
    "borderline_smote",
    "adasyn",
    "random_under",
    "smote_tomek",
    "smote_enn",
]


class RebalanceParams(Section):
    strategy: RebalanceStrategy
    sampling_ratio: float = Field(
        gt=0, le=1, description="Minority/majority ratio after resampling"
    )
    k_neighbors: int = Field(ge=1)
    small_minority: Literal["reduce_k", "fail"] = Field(
        description="When positives <= k_neighbors: lower k with a warning, or stop"
    )


class TuneParams(Section):
    enabled: bool = Field(description="false: hand params.yaml's values on unchanged")
    max_trials: int = Field(ge=1, description="trials, the untuned configuration included")
    max_minutes: float = Field(gt=0, description="no new trial starts after this")
    learning_rate: tuple[float, float] = Field(description="log-uniform range")
    hidden_units: list[list[int]] = Field(min_length=1, description="layer widths to try")
    dropout: tuple[float, float] = Field(description="uniform range, each in [0, 1)")
    batch_size: list[int] = Field(min_length=1)
    rebalance_strategies: list[RebalanceStrategy] = Field(min_length=1)
    pruner_startup_trials: int = Field(ge=1, description="trials never pruned (the first is)")
    pruner_warmup_epochs: int = Field(ge=0, description="epochs of a trial never pruned")

    @model_validator(mode="after")
    def _ranges(self) -> TuneParams:
        low, high = self.learning_rate
        if not 0 < low <= high:
            raise ValueError("learning_rate must be [low, high] with 0 < low <= high")
        if not 0 <= self.dropout[0] <= self.dropout[1] < 1:
            raise ValueError("dropout must be [low, high] with 0 <= low <= high < 1")
        if any(not units or min(units) < 1 for units in self.hidden_units):
            raise ValueError("hidden_units: every choice needs at least one layer of >= 1 unit")
        if min(self.batch_size) < 1:
            raise ValueError("batch_size: every choice must be >= 1")
        return self


class AugmentParams(Section):
    methods: list[Literal["gaussian", "mixup", "swap"]]
    fraction: float = Field(
        ge=0, le=5, description="Rows added per method, as a share of train rows"
    )
    noise_scale: float = Field(
        ge=0, description="gaussian: noise std as a share of each feature's std"
    )
    mixup_alpha: float = Field(gt=0, description="mixup: Beta(alpha, alpha) mixing weight")
    swap_probability: float = Field(ge=0, le=1, description="swap: chance each feature is swapped")
    exclude: list[str] = Field(description="Features never perturbed")


# How categorical features enter the model (pipelines.features); one definition for the
# params model, the saved feature transform and the bench.
CategoricalEncoding = Literal["one_hot", "embedding"]
ServedFlavour = Literal["tflite", "keras"]


class TrainParams(Section):
    # The controls added after the first version have defaults that reproduce the behaviour
    # before they existed (plain BCE, no L2, fixed LR, ...), so code and tests that build a
    # TrainParams by hand keep their meaning; params.yaml still sets every one explicitly.
    strategy: Literal["auto", "mirrored", "multi_worker", "default"]
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1, description="Per replica; global = this x replicas")
    learning_rate: float = Field(gt=0)
    hidden_units: list[int] = Field(min_length=1)
    dropout: float = Field(ge=0, lt=1)
    l2: float = Field(0.0, ge=0, description="L2 penalty on every Dense kernel; 0: off")
    loss: Literal["bce", "focal"] = Field("bce", description="binary cross-entropy or focal loss")
    focal_gamma: float = Field(2.0, ge=0, description="focal: down-weights easy examples")
    early_stopping_patience: int = Field(ge=1)
    reduce_lr_patience: int = Field(
        0, ge=0, description="epochs without val PR-AUC gain before the LR is cut; 0: off"
    )
    reduce_lr_factor: float = Field(0.5, gt=0, lt=1, description="LR multiplier on a plateau")
    deterministic: bool = Field(False, description="enable TF op determinism (slower)")
    steps_per_execution: int = Field(1, ge=1, description="batches per compiled call")
    mixed_precision: Literal["auto", "off"] = Field(
        "auto", description="auto: mixed_float16 when a GPU is visible, float32 otherwise"
    )
    cache_max_mb: int = Field(
        1024,
        ge=0,
        description="cache the validation batches in memory when the validation arrays fit "
        "in this size",
    )
    profile_batch: int = Field(
        0, ge=0, description="TensorBoard profiles this call of steps_per_execution batches; 0: off"
    )
    categorical_encoding: CategoricalEncoding = Field(
        "one_hot",
        description="categorical features: a learned Embedding per feature inside the model, "
        "or one-hot columns",
    )
    embedding_dim: Literal["auto"] | PositiveInt = Field(
        "auto",
        description="embedding: width of each feature's embedding; auto: "
        "min(16, round(1.6 x levels^0.56)), levels counting the unknown slot (fastai's rule)",
    )


class EvaluateParams(Section):
    calibration_bins: int = Field(ge=2)
    threshold_objective: Literal["f1", "cost"] = Field(
        description="On validation: maximise F1, or minimise cost_fp x FP + cost_fn x FN"
    )
    cost_fp: float = Field(ge=0, description="cost of one false positive (objective: cost)")
    cost_fn: float = Field(ge=0, description="cost of one false negative (objective: cost)")
    target_precision: float = Field(gt=0, le=1, description="reported: recall at this precision")
    target_recall: float = Field(gt=0, le=1, description="reported: precision at this recall")
    baselines: bool = Field(description="also fit logistic regression and gradient boosting")
    segment_column: str | None = Field(
        description="categorical column for per-segment metrics; auto: the one with fewest "
        "levels; null: none"
    )
    noise_levels: list[float] = Field(
        description="robustness: Gaussian noise on numeric features, in training stds"
    )
    importance_repeats: int = Field(ge=0, description="permutation importance repeats; 0: off")
    # Defaults keep hand-built EvaluateParams (tests, benches) meaning what they meant before
    # intervals existed, apart from gaining them; params.yaml sets each one explicitly.
    bootstrap_samples: int = Field(
        1000, ge=0, description="stratified bootstrap resamples for intervals; 0: off"
    )
    confidence: float = Field(0.95, gt=0, lt=1, description="coverage of each interval")
    min_positives: int = Field(
        30, ge=1, description="fewer positives in val or test: its metrics are flagged unreliable"
    )
    cv: Literal["auto", "on", "off"] = Field(
        "off", description="k-fold CV on train+val besides test; auto: below cv_below_rows"
    )
    cv_below_rows: int = Field(2000, ge=0, description="auto: CV when train+val hold fewer rows")
    cv_folds: int = Field(5, ge=2, description="stratified folds (fewer if positives are fewer)")
    shap_rows: int = Field(0, ge=0, description="test rows explained by SHAP; 0: off")
    shap_background: int = Field(50, ge=1, description="training rows SHAP masks with")
    shap_permutations: int = Field(2, ge=1, description="Permutation explainer passes per row")
    sensitive_columns: list[str] = Field(
        default_factory=list, description="per-group recall/FPR and their ratios on test"
    )

    @model_validator(mode="after")
    def _costs_given(self) -> EvaluateParams:
        if self.threshold_objective == "cost" and self.cost_fp + self.cost_fn == 0:
            raise ValueError("threshold_objective: cost needs cost_fp or cost_fn above 0")
        return self


class QuantizeParams(Section):
    variants: list[Literal["dynamic_range", "float16", "int8", "qat"]] = Field(min_length=1)
    max_pr_auc_drop: float = Field(ge=0, le=1)
    max_recall_drop: float = Field(ge=0, le=1)
    parity_tolerance: float = Field(
        gt=0, le=1, description="largest |TFLite - float| probability on validation allowed"
    )
    max_latency_ratio: float = Field(
        gt=0, description="largest batch-1 latency against the float32 TFLite model"
    )
    serving_policy: Literal["smallest", "fastest"] = Field(
        description="which eligible variant is served: smallest file or lowest batch-1 latency"
    )
    representative_rows: int = Field(ge=1, description="int8 calibration sample from train")
    qat_epochs: int = Field(ge=1)
    qat_learning_rate: float = Field(gt=0)


class RegisterParams(Section):
    model_name: str = Field(min_length=1)
    experiment_name: str = Field(min_length=1)
    min_delta: float = Field(ge=0, description="PR-AUC gain needed to replace the champion")
    max_recall_drop: float = Field(ge=0, le=1, description="Guardrail: recall may drop this much")
    max_ece_increase: float = Field(ge=0, le=1, description="Guardrail: calibration error rise")
    min_pr_auc: float = Field(ge=0, le=1, description="Floor for the very first champion")
    min_recall: float = Field(ge=0, le=1, description="Recall floor for the very first champion")
    confidence: float = Field(gt=0.5, lt=1, description="Of the PR-AUC difference's interval")
    bootstrap_samples: int = Field(ge=100, description="Paired resamples of the test split")
    non_inferiority_margin: float = Field(ge=0, le=1, description="PR-AUC the challenger may lose")
    require_improvement: bool = Field(description="The interval must also lie above 0")
    max_disparity: float | None = Field(
        None, ge=0, le=1, description="1 - recall/FPR ratio across sensitive groups; null: off"
    )

    # Defaults (params.yaml's values) so that code building a gate policy need not name them.
    lock_wait_s: float = Field(1800, ge=0, description="Wait this long for the registry lock")
    lock_stale_s: float = Field(7200, gt=0, description="A registry lock older than this is reaped")
    served_flavour: ServedFlavour = Field(
        default="tflite", description="What the registered pyfunc runs: TFLite (LiteRT) or Keras"
    )


class ScoreParams(Section):
    chunk_rows: PositiveInt = Field(description="rows read, admitted and scored at a time")


class MonitorParams(Section):
    psi_limit: float = Field(gt=0, description="A feature's PSI above this: drift")
    prediction_psi_limit: float = Field(gt=0, description="Score distribution PSI above: drift")
    min_rows: int = Field(ge=1, description="Fewer scored rows: drift is not judged")
    max_pr_auc_drop: float = Field(ge=0, le=1, description="Realised PR-AUC loss: degraded")
    max_recall_drop: float = Field(ge=0, le=1, description="Realised recall loss: degraded")
    min_labelled_positives: int = Field(ge=1, description="Fewer: quality is not judged")
    max_model_age_days: float = Field(gt=0, description="An older champion: stale")


class Params(Section):
    seed: int
    data: DataParams
    simulate: SimulateParams
    ingest: IngestParams
    validate_: ValidateParams = Field(alias="validate")
    split: SplitParams
    tune: TuneParams
    rebalance: RebalanceParams
    augment: AugmentParams
    train: TrainParams
    evaluate: EvaluateParams
    quantize: QuantizeParams
    register_: RegisterParams = Field(alias="register")
    score: ScoreParams
    monitor: MonitorParams

    @model_validator(mode="before")
    @classmethod
    def _dataset_named_after_model(cls, raw: object) -> object:
        """``data.name: null`` means ``<register.model_name>__<data.target>`` (file-name safe):
        another export of the same table (same target) is the same dataset, while a dataset
        pointed at with only the ``data:`` keys and another target gets its own schema."""
        if not isinstance(raw, dict):
            return raw
        data, register = raw.get("data"), raw.get("register")
        if isinstance(data, dict) and data.get("name") is None and isinstance(register, dict):
            name = f"{register.get('model_name') or ''}__{data.get('target') or ''}"
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.-")
            if slug:
                raw = raw | {"data": data | {"name": slug}}
        return raw


def _describe(error: ValidationError, source: Path) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<root>"
        reason = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{key}: {reason}")
    return f"{source}: invalid params: " + "; ".join(problems)


def load_params(path: Path = paths.PARAMS) -> Params:
    """Read and validate the whole params file; raise PipelineError naming each bad key."""
    if not path.exists():
        raise PipelineError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(raw, dict):
        raise PipelineError(f"{path}: expected a mapping of sections")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise PipelineError(_describe(exc, path)) from exc
