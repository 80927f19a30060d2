"""The answer of `predict`, built in one place for the hot path and the BentoML API: the task's fields from the
model's output (binary probabilities and labels, multiclass a probability per class and labels, regression values),
counted in the service's metrics, with a fresh request id. An output that is not a finite number is never answered
with a 2xx: the request is refused as unscorable, naming its rows and missing values."""

import uuid
from typing import Any

import numpy as np

from mlplatform.lib import predictions
from mlplatform.serving.metrics import PredictionMetrics
from mlplatform.serving.request import Prediction, prediction_model
from mlplatform.specs import Spec

DECIMALS = 6  # probabilities are answered to 6 decimals; labels come from the unrounded ones


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
    """Turns one request's model output into its `Prediction` of the spec's task (and counts it)."""

    def __init__(self, spec: Spec, version: str, threshold: float, metrics: PredictionMetrics) -> None:
        self.spec, self.model, self.version, self.threshold, self.metrics = (spec, spec.model_name, version,
                                                                             threshold, metrics)
        self.answer_type = prediction_model(spec)

    def fields(self, out: np.ndarray) -> dict[str, Any]:
        """The task's fields of an answer for finite outputs."""
        if self.spec.task == "regression":
            return {"values": out.tolist()}
        labels = predictions.labels(out, self.spec, self.threshold)
        if self.spec.task == "binary":
            return {"probabilities": out.round(DECIMALS).tolist(), "labels": labels}
        names = [str(c) for c in self.spec.classes]
        return {"probabilities": [dict(zip(names, row, strict=True)) for row in out.round(DECIMALS).tolist()],
                "labels": labels}

    def build(self, out: np.ndarray, rows: list[dict[str, Any]]) -> Prediction:
        bad = np.flatnonzero(~predictions.finite_rows(out))
        if len(bad):
            raise Unscorable(rows, bad.tolist())
        fields = self.fields(out)
        self.metrics.record(self.version, out, fields.get("labels"))
        return self.answer_type(request_id=request_id(), model=self.model, model_version=self.version, **fields)
