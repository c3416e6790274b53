"""Every file location the pipeline reads or writes, defined once.

``dvc.yaml`` repeats these paths (DVC needs them literally); ``tests/unit/test_dvc_yaml.py``
checks that both agree. All paths are relative to the repository root, which is the
working directory of every stage (DVC and Airflow both run stages from there).
"""

from pathlib import Path

PARAMS = Path("params.yaml")
DVC_LOCK = Path("dvc.lock")
DVC_YAML = Path("dvc.yaml")
DVC_CACHE = Path(".dvc") / "cache" / "files" / "md5"
# The pipeline and stage locks (pipelines.run_guard): DVC's own scratch folder, never committed.
RUN_LOCKS = Path(".dvc") / "tmp" / "pipeline-locks"
# This checkout's pseudonym key when $PIPELINE_PII_KEY is unset (pipelines.personal_data);
# secret: gitignored, never a DVC output.
PII_KEY = Path(".pii.key")
DATA = Path("data")

LANDING = DATA / "landing"

RAW_SNAPSHOT = DATA / "raw" / "snapshot.parquet"
RAW_MANIFEST = DATA / "raw" / "partitions.json"

SCHEMAS = DATA / "schemas"
VALIDATED = DATA / "validated"
CLEAN = VALIDATED / "clean.parquet"
QUARANTINE = VALIDATED / "quarantine.parquet"
DATA_DOCS = VALIDATED / "data_docs"
ACCEPTED_PARTITIONS = VALIDATED / "accepted.json"
# The schema this run enforced: what every later stage reads, whatever the source is called.
ENFORCED_SCHEMA = VALIDATED / "schema.yaml"
# Data Docs of a run that failed a critical check: not an output, kept for the user to read.
FAILED_DATA_DOCS = VALIDATED / "data_docs_failed"
REFERENCE = DATA / "reference"

SPLITS = DATA / "splits"
SPLIT_TRAIN = SPLITS / "train.parquet"
SPLIT_VAL = SPLITS / "val.parquet"
SPLIT_TEST = SPLITS / "test.parquet"

REBALANCED_TRAIN = DATA / "rebalanced" / "train.parquet"
CLASS_WEIGHTS = DATA / "rebalanced" / "class_weights.json"
AUGMENTED_TRAIN = DATA / "augmented" / "train.parquet"

MODELS = DATA / "models"
MODEL_DIR = MODELS / "float"
KERAS_MODEL = MODEL_DIR / "model.keras"
FEATURE_TRANSFORM = MODEL_DIR / "transform.json"
TFLITE_MODEL = MODELS / "model.tflite"
QUANTIZE_TABLE = MODELS / "quantization.md"
DECISION_THRESHOLD = MODELS / "threshold.json"
SERVED_VARIANT = MODELS / "served.json"
TUNED_CONFIG = MODELS / "tuned.json"
DISPARITY = MODELS / "disparity.json"
# Train's working folders, not outputs: the per-epoch backup a killed run resumes from
# (deleted when training succeeds) and TensorBoard logs (watched live, so not written atomically).
TRAIN_BACKUP = MODELS / "train_backup"
TENSORBOARD = MODELS / "tensorboard"

# Each stage writes two result files (pipelines.reports): its full report, a DVC output logged
# to MLflow, and its few headline numbers, a DVC metrics file (one column each in
# `dvc metrics show`). Register writes only its metrics file.
REPORTS = DATA / "reports"
INGEST_REPORT = REPORTS / "ingest.json"
VALIDATE_REPORT = REPORTS / "validate.json"
SPLIT_REPORT = REPORTS / "split.json"
TUNE_REPORT = REPORTS / "tune.json"
REBALANCE_REPORT = REPORTS / "rebalance.json"
AUGMENT_REPORT = REPORTS / "augment.json"
TRAIN_REPORT = REPORTS / "train.json"
EVALUATE_REPORT = REPORTS / "evaluate.json"
QUANTIZE_REPORT = REPORTS / "quantize.json"
REGISTER_REPORT = REPORTS / "register.json"

METRICS = DATA / "metrics"
INGEST_METRICS = METRICS / "ingest.json"
VALIDATE_METRICS = METRICS / "validate.json"
SPLIT_METRICS = METRICS / "split.json"
TUNE_METRICS = METRICS / "tune.json"
REBALANCE_METRICS = METRICS / "rebalance.json"
AUGMENT_METRICS = METRICS / "augment.json"
TRAIN_METRICS = METRICS / "train.json"
EVALUATE_METRICS = METRICS / "evaluate.json"
QUANTIZE_METRICS = METRICS / "quantize.json"
REGISTER_METRICS = METRICS / "register.json"

PLOTS = DATA / "plots"
TRAINING_HISTORY = PLOTS / "training_history.csv"
PR_CURVE = PLOTS / "pr_curve.csv"
ROC_CURVE = PLOTS / "roc_curve.csv"
CONFUSION = PLOTS / "confusion.csv"
CALIBRATION = PLOTS / "calibration.csv"
THRESHOLD_CURVE = PLOTS / "threshold.csv"
IMPORTANCE = PLOTS / "importance.csv"
SEGMENTS = PLOTS / "segments.csv"
ROBUSTNESS = PLOTS / "robustness.csv"
SHAP = PLOTS / "shap.csv"
PLOT_IMAGES = PLOTS / "images"

# Monitoring (outside dvc.yaml's training graph): the last window's report, its headline
# numbers (`dvc metrics show data/monitor/metrics.json`) and its picture; scored windows.
MONITOR = DATA / "monitor"
MONITOR_REPORT = MONITOR / "report.json"
MONITOR_METRICS = MONITOR / "metrics.json"
MONITOR_PLOT = MONITOR / "report.png"
SCORED = DATA / "scored"

MLFLOW_DIR = Path("mlflow")
MLFLOW_DEFAULT_URI = "sqlite:///mlflow/mlflow.db"
MLFLOW_ARTIFACTS = MLFLOW_DIR / "artifacts"
