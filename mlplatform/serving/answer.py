"""The answer of `predict`, built in one place for the hot path and the BentoML API: probabilities and labels
from the model's scores, counted in the service's metrics, with a fresh request id. A score that is not a finite
number is never answered with a 2xx: the request is refused as unscorable, naming its rows and missing values."""

import uuid
from typing import Any

import numpy as np

from mlplatform.serving.metrics import PredictionMetrics
from mlplatform.serving.request import Prediction
from mlplatform.serving.scorer import finish


def request_id() -> str:
    return uuid.uuid4().hex


class Unscorable(ValueError):
    """The model cannot score some rows of a request (e.g. a missing value its pipeline does not impute)."""

    def __init__(self, rows: list[dict[str, Any]], bad: list[int], cause: str = "") -> None:
        missing = sorted({k for i in bad for k, v in rows[i].items() if v is None})
        where = f" (missing values in {', '.join(missing)})" if missing else ""
        super().__init__(f"the model cannot score row{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))}{where}"
                         + (f": {cause}" if cause else ""))


def unscorable(rows: list[dict[str, Any]], exc: Exception) -> Unscorable:
    """The model refused a request's rows (scikit-learn's input checks raise ValueError, e.g. on NaN)."""
    return exc if isinstance(exc, Unscorable) else Unscorable(rows, list(range(len(rows))), str(exc).splitlines()[0])


class Answers:
    """Turns one request's positive-class probabilities into its `Prediction` (and counts it)."""

    def __init__(self, model: str, version: str, threshold: float, metrics: PredictionMetrics) -> None:
        self.model, self.version, self.threshold, self.metrics = model, version, threshold, metrics

    def build(self, proba: np.ndarray, rows: list[dict[str, Any]]) -> Prediction:
        bad = np.flatnonzero(~np.isfinite(proba))
        if len(bad):
            raise Unscorable(rows, bad.tolist())
        probabilities, labels = finish(proba, self.threshold)
        self.metrics.record(self.version, probabilities, labels)
        return Prediction(request_id=request_id(), model=self.model, model_version=self.version,
                          probabilities=probabilities, labels=labels)
