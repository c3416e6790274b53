"""The served model: an MLflow pyfunc that takes raw feature rows and returns scores and labels.

Logged with MLflow's models-from-code, so loading it runs this file instead of unpickling
anything. It applies the feature transform fitted in train, the Keras model (loaded with
``safe_mode``), and the decision threshold chosen on validation by evaluate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from mlflow.pyfunc import PythonModel

import mlflow


class TabularClassifier(PythonModel):
    def load_context(self, context) -> None:
        from pipelines.features import FeatureTransform
        from pipelines.tf_runtime import load_keras_model

        self.model = load_keras_model(context.artifacts["keras_model"])
        self.transform = FeatureTransform.load(context.artifacts["transform"])
        config = json.loads(Path(context.artifacts["serving_config"]).read_text())
        self.threshold = float(config["threshold"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from pipelines.tf_runtime import predict_proba

        scores = predict_proba(self.model, self.transform.transform(model_input))
        return pd.DataFrame(
            {"probability": scores, "label": (scores >= self.threshold).astype("int64")}
        )


mlflow.models.set_model(TabularClassifier())
