"""The service's own Prometheus series, exported on BentoML's /metrics next to its request metrics."""

from typing import Any


class PredictionMetrics:
    """Prometheus series of the service's answers, exported on BentoML's /metrics next to its own.

    mlplatform_predictions_total{model, model_version, predicted_class}: rows answered, by predicted label ("value"
    for regression);
    mlplatform_prediction_score{model, model_version}: histogram of the probability of the answered class (binary:
    of the positive class); regression answers no probability and records none;
    mlplatform_request_rows{model, model_version}: histogram of rows per request.
    """

    SCORE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    ROW_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

    def __init__(self, model: str, enabled: bool = True) -> None:
        self.model, self.enabled = model, enabled
        self._series: dict[str, tuple[Any, ...]] = {}
        if not enabled:
            return
        import bentoml

        labels = ["model", "model_version"]
        self.predictions = bentoml.metrics.Counter(name="mlplatform_predictions", documentation="Rows answered by "
                                                   "predicted class", labelnames=[*labels, "predicted_class"])
        self.scores = bentoml.metrics.Histogram(name="mlplatform_prediction_score", labelnames=labels,
                                                documentation="Positive-class probability per answered row",
                                                buckets=self.SCORE_BUCKETS)
        self.rows = bentoml.metrics.Histogram(name="mlplatform_request_rows", labelnames=labels,
                                              documentation="Rows per prediction request", buckets=self.ROW_BUCKETS)

    def record(self, version: str, out: Any, labels: list[Any] | None) -> None:
        """Count one answer: `out` is the task's output (`lib/predictions.py`), `labels` its classes (None for
        regression)."""
        if not self.enabled:
            return
        series = self._series.get(version)
        if series is None:  # the children of a version, looked up once each
            series = self._series[version] = ({}, self.scores.labels(self.model, version),
                                              self.rows.labels(self.model, version))
        counters, scores, rows = series
        classes = labels if labels is not None else ["value"] * len(out)
        for name in set(map(str, classes)):
            counter = counters.get(name)
            if counter is None:
                counter = counters[name] = self.predictions.labels(self.model, version, name)
            counter.inc(sum(1 for c in classes if str(c) == name))
        if labels is not None:
            for p in (out if out.ndim == 1 else out.max(axis=1)).tolist():
                scores.observe(p)
        rows.observe(len(classes))
