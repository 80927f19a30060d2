"""Scoring: a fitted pipeline compiled for request rows (no DataFrame on the hot path), and the answer's rounding."""

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from mlplatform.lib.features.featurize import derive, featurize
from mlplatform.specs import Spec


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
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        pre, self.estimator = pipeline[0], pipeline[-1]
        if len(pipeline) != 2 or not isinstance(pre, ColumnTransformer) or pre.remainder != "drop":
            return False
        parts = {name: (step, list(cols)) for name, step, cols in pre.transformers_ if name != "remainder"}
        scaler, numeric_cols = parts.get("numeric", (None, []))
        encoder, categorical_cols = parts.get("categorical", (None, []))
        if (not isinstance(scaler, StandardScaler) or not isinstance(encoder, OneHotEncoder)
                or numeric_cols != self.numeric + self.derived or categorical_cols != self.categorical
                or encoder.handle_unknown != "ignore" or encoder.drop is not None
                or getattr(encoder, "sparse_output", True)
                or getattr(encoder, "_infrequent_enabled", False) or set(parts) != {"numeric", "categorical"}):
            return False
        self.mean = scaler.mean_ if scaler.with_mean else np.zeros(len(numeric_cols))
        self.scale = scaler.scale_ if scaler.with_std else np.ones(len(numeric_cols))
        self.offsets, width = [], len(numeric_cols)
        for cats in encoder.categories_:
            self.offsets.append({str(c): width + i for i, c in enumerate(cats)})
            width += len(cats)
        self.width = width
        self.linear = (isinstance(self.estimator, LogisticRegression) and len(self.estimator.classes_) == 2)
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
        out[:, :k] -= self.mean
        out[:, :k] /= self.scale
        for offsets, name in zip(self.offsets, self.categorical, strict=True):
            for i, row in enumerate(rows):
                column = offsets.get(str(row[name]))
                if column is not None:  # a category not seen in training is all zeros (handle_unknown="ignore")
                    out[i, column] = 1.0
        return out

    def proba(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Probability of the positive class per row."""
        if not self.compiled:
            frame = featurize(pd.DataFrame(rows), self.spec, keys=False)[self.spec.feature_names]
            return np.asarray(self.pipeline.predict_proba(frame))[:, 1]
        x = self.matrix(rows)
        if self.linear:  # LogisticRegression.predict_proba for two classes, without its per-call input checks
            return expit(x @ self.estimator.coef_[0] + self.estimator.intercept_[0])
        return np.asarray(self.estimator.predict_proba(x))[:, 1]

    def score(self, rows: list[dict[str, Any]], threshold: float) -> tuple[list[float], list[int]]:
        return finish(self.proba(rows), threshold)


def finish(proba: np.ndarray, threshold: float) -> tuple[list[float], list[int]]:
    """What an answer carries: probabilities to 6 decimals, labels from the unrounded probabilities."""
    return proba.round(6).tolist(), (proba >= threshold).astype(int).tolist()
