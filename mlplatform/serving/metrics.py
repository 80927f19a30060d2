"""The service's own Prometheus series, exported on BentoML's /metrics next to its request metrics."""

from typing import Any


class PredictionMetrics:
    """Prometheus series of the service's answers, exported on BentoML's /metrics next to its own.

    mlplatform_predictions_total{model, model_version, predicted_class}: rows answered, by predicted label;
    mlplatform_prediction_score{model, model_version}: histogram of the positive-class probability;
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

    def record(self, version: str, proba: list[float], labels: list[int]) -> None:
        if not self.enabled:
            return
        series = self._series.get(version)
        if series is None:  # the labelled children, looked up once per model version
            series = self._series[version] = (self.predictions.labels(self.model, version, "1"),
                                              self.predictions.labels(self.model, version, "0"),
                                              self.scores.labels(self.model, version),
                                              self.rows.labels(self.model, version))
        positive, negative, scores, rows = series
        positives = sum(labels)
        if positives:
            positive.inc(positives)
        if positives < len(labels):
            negative.inc(len(labels) - positives)
        for p in proba:
            scores.observe(p)
        rows.observe(len(labels))
