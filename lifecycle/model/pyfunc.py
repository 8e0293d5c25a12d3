"""The MLflow pyfunc wrapper around a `Predictor` (what `models:/NAME@ALIAS` loads to)."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from lifecycle.model.predictor import Predictor


class LifecycleModel(mlflow.pyfunc.PythonModel):
    """Predicts from raw records: returns labels (classification) or values (regression).

    Pass `params={"probabilities": True}` to get a frame of class probabilities instead.
    """

    predictor: Predictor

    def load_context(self, context: Any) -> None:
        from pathlib import Path

        artifacts = context.artifacts
        self.predictor = Predictor.from_files(Path(artifacts["booster"]), Path(artifacts["spec"]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> Any:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        labels, proba = self.predictor.predict_frame(model_input)
        if params and params.get("probabilities") and proba is not None:
            return pd.DataFrame(proba, columns=[str(c) for c in self.predictor.spec.classes])
        return np.asarray(labels)
