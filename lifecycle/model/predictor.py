"""The model format every part shares: a feature spec plus an XGBoost booster, logged to MLflow as
a pyfunc so `mlflow models serve` and our API answer from the same artifact.

Categorical (string) features use XGBoost's native categorical support: the spec keeps each
column's category list and encodes a string as its index, so the model accepts exactly the raw
records the data source produced. Serving unwraps the pyfunc (`Predictor.from_pyfunc`) and calls
`booster.inplace_predict` on a numpy matrix, without per-request pandas.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from lifecycle.core.errors import InputValidationError, UnseenCategoryError
from lifecycle.core.settings import Task

FeatureKind = Literal["numeric", "integer", "categorical"]
BOOSTER_FILE = "booster.ubj"
SPEC_FILE = "feature_spec.json"


@dataclass(frozen=True)
class Feature:
    """One input column: its name, kind and (categorical) the allowed categories, in code order."""

    name: str
    kind: FeatureKind
    categories: tuple[str, ...] = ()
    nullable: bool = True  # XGBoost treats NaN as missing, so numeric nulls are fine by default

    @property
    def xgb_type(self) -> str:
        return "c" if self.kind == "categorical" else "q"


@dataclass(frozen=True)
class FeatureSpec:
    """What the model expects: features in order, the target, the task and the class labels."""

    features: tuple[Feature, ...]
    target: str
    task: Task
    classes: tuple[Any, ...] = ()
    _codes: dict[str, dict[str, int]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        codes = {f.name: {c: i for i, c in enumerate(f.categories)} for f in self.features}
        object.__setattr__(self, "_codes", codes)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def is_classifier(self) -> bool:
        return self.task != "regression"

    @classmethod
    def infer(cls, frame: pd.DataFrame, target: str, task: Task) -> FeatureSpec:
        """Build the spec from a training frame: strings/categories/bools become categorical."""
        features = []
        for name in frame.columns:
            if name == target:
                continue
            col = frame[name]
            if (
                isinstance(col.dtype, pd.CategoricalDtype)
                or pd.api.types.is_object_dtype(col)
                or pd.api.types.is_string_dtype(col)
                or pd.api.types.is_bool_dtype(col)
            ):
                cats = tuple(sorted({str(v) for v in col.dropna().unique()}))
                features.append(Feature(str(name), "categorical", cats))
            elif pd.api.types.is_integer_dtype(col):
                features.append(Feature(str(name), "integer"))
            else:
                features.append(Feature(str(name), "numeric"))
        classes: tuple[Any, ...] = ()
        if task != "regression":
            classes = tuple(_plain(v) for v in sorted(frame[target].dropna().unique()))
        return cls(tuple(features), target, task, classes)

    # -- encoding -------------------------------------------------------------------------------
    def encode_frame(self, frame: pd.DataFrame, unseen: list | None = None) -> np.ndarray:
        """Raw frame → float32 matrix in feature order (categoricals as codes, NaN = missing).

        Raises InputValidationError naming the first missing column or unknown category; with
        an `unseen` list, an unknown category is scored as missing instead and noted there as
        `{"row", "field", "value"}` (row: position in the frame).
        """
        out = np.empty((len(frame), len(self.features)), dtype=np.float32)
        for j, feat in enumerate(self.features):
            if feat.name not in frame.columns:
                raise InputValidationError(feat.name, "missing column")
            col = frame[feat.name]
            if feat.kind == "categorical":
                # Vectorised: pandas maps strings to codes; -1 marks null or unknown.
                present = col.notna().to_numpy()
                codes = pd.Categorical(
                    col.astype(object)
                    .where(present, None)
                    .map(lambda v: v if v is None else str(v)),
                    categories=list(feat.categories),
                ).codes
                unknown = (codes == -1) & present
                if unknown.any() and unseen is None:
                    value = col[unknown].iloc[0]
                    raise UnseenCategoryError(
                        feat.name,
                        f"unknown category {value!r}; expected one of {list(feat.categories)}",
                        value,
                    )
                if unknown.any():
                    rows = np.flatnonzero(unknown)
                    values = col.to_numpy()[rows]
                    unseen += [
                        {"row": int(i), "field": feat.name, "value": _plain(v)}
                        for i, v in zip(rows, values, strict=True)
                    ]
                out[:, j] = np.where(codes == -1, np.nan, codes)
            else:
                try:
                    out[:, j] = pd.to_numeric(col, errors="raise").astype(np.float32)
                except (ValueError, TypeError) as exc:
                    raise InputValidationError(feat.name, f"expected a number ({exc})") from None
        return out

    def encode_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Validated records (dicts of raw values) → float32 matrix, without pandas (fast path)."""
        out = np.empty((len(records), len(self.features)), dtype=np.float32)
        for i, rec in enumerate(records):
            for j, feat in enumerate(self.features):
                value = rec.get(feat.name)
                if value is None:
                    out[i, j] = np.nan
                elif feat.kind == "categorical":
                    code = self._codes[feat.name].get(str(value))
                    if code is None:
                        raise UnseenCategoryError(
                            feat.name,
                            f"unknown category {value!r}; expected one of "
                            f"{list(self._codes[feat.name])}",
                            value,
                        )
                    out[i, j] = code
                else:
                    out[i, j] = value
        return out

    def decode(self, raw: np.ndarray) -> tuple[list[Any], np.ndarray | None]:
        """Booster output → (predictions in the target's own labels, class probabilities)."""
        if self.task == "regression":
            return raw.astype(float).tolist(), None
        if self.task == "binary":
            proba = np.column_stack([1.0 - raw, raw])
        else:
            proba = raw.reshape(-1, len(self.classes))  # softprob: (rows, classes)
        idx = proba.argmax(axis=1)
        return [self.classes[i] for i in idx], proba

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [asdict(f) for f in self.features],
            "target": self.target,
            "task": self.task,
            "classes": list(self.classes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        feats = tuple(
            Feature(f["name"], f["kind"], tuple(f.get("categories", ())), f.get("nullable", True))
            for f in data["features"]
        )
        return cls(feats, data["target"], data["task"], tuple(data.get("classes", ())))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: Path) -> FeatureSpec:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _plain(value: Any) -> Any:
    """numpy scalar → plain Python (JSON and BSON friendly)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Predictor:
    """A loaded model: the booster plus its spec. The same object backs pyfunc and the API."""

    def __init__(self, booster: Any, spec: FeatureSpec) -> None:
        self.booster = booster
        self.spec = spec

    @classmethod
    def from_files(cls, booster_path: Path, spec_path: Path) -> Predictor:
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(str(booster_path))
        # One thread per prediction: requests are tiny and the server runs them concurrently.
        booster.set_param({"nthread": 1})
        return cls(booster, FeatureSpec.load(spec_path))

    @classmethod
    def from_pyfunc(cls, pyfunc_model: Any) -> Predictor:
        """Unwrap a loaded `mlflow.pyfunc` model back into its Predictor."""
        return pyfunc_model.unwrap_python_model().predictor

    def predict_matrix(self, matrix: np.ndarray) -> tuple[list[Any], np.ndarray | None]:
        return self.spec.decode(self.booster.inplace_predict(matrix))

    def predict_frame(
        self, frame: pd.DataFrame, unseen: list | None = None
    ) -> tuple[list[Any], np.ndarray | None]:
        return self.predict_matrix(self.spec.encode_frame(frame, unseen))

    def predict_records(
        self, records: Sequence[Mapping[str, Any]]
    ) -> tuple[list[Any], np.ndarray | None]:
        return self.predict_matrix(self.spec.encode_records(records))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / BOOSTER_FILE))
        self.spec.save(directory / SPEC_FILE)
