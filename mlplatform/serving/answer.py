"""The answer of `predict`, built in one place for the hot path and the BentoML API: probabilities and labels
from the model's scores, counted in the service's metrics, with a fresh request id."""

import uuid

import numpy as np

from mlplatform.serving.metrics import PredictionMetrics
from mlplatform.serving.request import Prediction
from mlplatform.serving.scorer import finish


def request_id() -> str:
    return uuid.uuid4().hex


class Answers:
    """Turns one request's positive-class probabilities into its `Prediction` (and counts it)."""

    def __init__(self, model: str, version: str, threshold: float, metrics: PredictionMetrics) -> None:
        self.model, self.version, self.threshold, self.metrics = model, version, threshold, metrics

    def build(self, proba: np.ndarray) -> Prediction:
        probabilities, labels = finish(proba, self.threshold)
        self.metrics.record(self.version, probabilities, labels)
        return Prediction(request_id=request_id(), model=self.model, model_version=self.version,
                          probabilities=probabilities, labels=labels)
