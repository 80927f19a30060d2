"""Scoring: a fitted pipeline compiled for request rows (no DataFrame on the hot path), giving the task's output
(`lib/predictions.py`)."""

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, softmax

from mlplatform.lib import predictions
from mlplatform.lib.features.featurize import derive, featurize
from mlplatform.specs import MISSING_CATEGORY, Spec


class Scorer:
    """A fitted pipeline compiled for requests: rows straight into the model's input matrix, no DataFrame.

    The scaler's and one-hot encoder's fitted state is applied with numpy (for a request of a few rows pandas
    and the ColumnTransformer cost ~50x the model itself); derived features go through the training code
    (`features.derive`). A pipeline of another shape is scored through `featurize` and the pipeline itself.
    """

    def __init__(self, pipeline: Any, spec: Spec) -> None:
        self.pipeline, self.spec = pipeline, spec
        self.numeric = [c.name for c in spec.numeric]
        self.derived = [d.name for d in spec.derived]
        self.categorical = spec.categorical_feature_names
        self.compiled = self._compile(pipeline)

    def _compile(self, pipeline: Any) -> bool:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        if not isinstance(pipeline, Pipeline) or len(pipeline) != 2:
            return False
        pre, self.estimator = pipeline[0], pipeline[-1]
        if not isinstance(pre, ColumnTransformer) or pre.remainder != "drop":
            return False
        # a transformer given no columns is not fitted (and is left out when it has none to encode)
        parts = {name: (step, list(cols)) for name, step, cols in pre.transformers_
                 if name != "remainder" and len(cols)}
        scaler, numeric_cols = parts.get("numeric", (None, []))
        encoder, categorical_cols = parts.get("categorical", (OneHotEncoder(handle_unknown="ignore",
                                                                            sparse_output=False), []))
        self.fill = np.full(len(numeric_cols), np.nan)  # NaN: no imputer (a missing value stays missing)
        if isinstance(scaler, Pipeline) and len(scaler) == 2 and isinstance(scaler[0], SimpleImputer):
            imputer, scaler = scaler[0], scaler[1]
            if imputer.add_indicator or len(imputer.statistics_) != len(numeric_cols):
                return False
            self.fill = imputer.statistics_.astype("float64")
        if (not isinstance(scaler, StandardScaler) or not isinstance(encoder, OneHotEncoder)
                or numeric_cols != self.numeric + self.derived or categorical_cols != self.categorical
                or encoder.handle_unknown != "ignore" or encoder.drop is not None
                or getattr(encoder, "sparse_output", True)
                or getattr(encoder, "_infrequent_enabled", False)
                or set(parts) != {"numeric", "categorical"} - ({"categorical"} if not self.categorical else set())):
            return False
        self.mean = scaler.mean_ if scaler.with_mean else np.zeros(len(numeric_cols))
        self.scale = scaler.scale_ if scaler.with_std else np.ones(len(numeric_cols))
        self.offsets, width = [], len(numeric_cols)
        for cats in getattr(encoder, "categories_", []):
            self.offsets.append({str(c): width + i for i, c in enumerate(cats)})
            width += len(cats)
        self.width = width
        # Linear models are applied as one matrix product (their predict methods re-check the input each call).
        self.linear = isinstance(self.estimator, LogisticRegression | LinearRegression | Ridge)
        return True

    def matrix(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """The model's input for contract rows (validated dicts), exactly as the fitted preprocessing makes it."""
        n = len(rows)
        numeric = np.array([[np.nan if r[c] is None else r[c] for c in self.numeric] for r in rows], dtype="float64")
        numeric = numeric.reshape(n, len(self.numeric))
        columns = {c: numeric[:, i] for i, c in enumerate(self.numeric)}
        out = np.zeros((n, self.width))
        out[:, :len(self.numeric)] = numeric
        for j, feature in enumerate(self.spec.derived):
            out[:, len(self.numeric) + j] = derive(columns, feature)
        k = len(self.numeric) + len(self.derived)
        block = out[:, :k]
        missing = np.isnan(block)
        if missing.any():  # the fitted imputer's statistics (NaN without an imputer: the answer is refused)
            block[missing] = np.broadcast_to(self.fill, block.shape)[missing]
        block -= self.mean
        block /= self.scale
        for offsets, name in zip(self.offsets, self.categorical, strict=True):
            for i, row in enumerate(rows):
                value = row[name]
                column = offsets.get(MISSING_CATEGORY if value is None else str(value))
                if column is not None:  # a category not seen in training is all zeros (handle_unknown="ignore")
                    out[i, column] = 1.0
        return out

    def output(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """The task's output per row: binary the positive class's probability, multiclass a probability per
        declared class, regression the value."""
        if not self.compiled:
            frame = featurize(pd.DataFrame(rows), self.spec, keys=False)[self.spec.feature_names]
            return predictions.output(self.pipeline, frame, self.spec)
        x = self.matrix(rows)
        if not self.linear:
            return predictions.output(self.estimator, x, self.spec)
        if not np.isfinite(x).all():
            raise ValueError("Input X contains NaN.")  # what the estimator itself says (the answer is a 422)
        raw = x @ self.estimator.coef_.T + self.estimator.intercept_
        if self.spec.task == "regression":
            return np.asarray(raw, dtype="float64").reshape(len(rows))
        if raw.ndim == 2 and raw.shape[1] == 1:  # two classes: one decision function for classes_[1]
            p1 = expit(raw[:, 0])
            return predictions.from_proba(np.column_stack([1 - p1, p1]), self.estimator.classes_, self.spec)
        return predictions.from_proba(softmax(raw, axis=1), self.estimator.classes_, self.spec)
