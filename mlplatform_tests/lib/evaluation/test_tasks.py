"""Evaluation per task on real datasets: the task's metrics, the user's own metric in the gates and the report,
fairness that says "not judged" when no two slices are large enough."""

import dataclasses

import numpy as np

from mlplatform.lib.evaluation import gates, metrics, report
from mlplatform.lib.features.featurize import featurize
from mlplatform.lib.training.train import TrainParams, fit
from mlplatform.specs import Gates, Metric
from mlplatform_tests.datasets import Dataset, diabetes, wine


def within_25(y: np.ndarray, out: np.ndarray) -> float:
    """Share of predictions within 25 of the truth (a user's regression metric)."""
    return float(np.mean(np.abs(np.asarray(y, dtype=float) - out) <= 25))


def evaluated(data: Dataset, estimator: str) -> metrics.Evaluation:
    frame = featurize(data.frame, data.spec).assign(**{data.spec.label: data.frame[data.spec.label].to_numpy()})
    if data.spec.sensitive is not None:
        frame[data.spec.sensitive.name] = data.frame[data.spec.sensitive.name].to_numpy()
    pipeline, _, holdout = fit(frame, data.spec, TrainParams(estimator, 1.0, 300, 3, 2))
    return metrics.evaluate(pipeline, None, holdout, data.spec, 0.3, data.spec.gates.min_slice_rows, 3)


def test_a_users_metric_is_computed_gated_and_reported_next_to_the_tasks_own(tmp_path):
    base = diabetes()
    spec = dataclasses.replace(base.spec, metrics=(Metric("within_25", f"{__name__}:within_25"),),
                               gates=Gates(floors=(("within_25", 0.99),)))
    result = evaluated(Dataset(spec, base.frame), "ridge")
    share = result.candidate.metrics["within_25"]
    assert 0 < share < 0.99 and {"rmse", "mae", "r2"} <= set(result.candidate.metrics)
    gate = gates.floors(result, gates.Thresholds.of(spec))
    assert not gate.passed and f"within_25 {share:.4f} < floor 0.9900" in gate.description
    assert "within_25" in report.comparison(result)["metric"].tolist()


def test_fairness_with_no_two_slices_large_enough_is_not_judged_rather_than_passed():
    data = diabetes()  # two slices of about 40 holdout rows each, under min_slice_rows=100
    result = evaluated(data, "ridge")
    gate = gates.fairness(result, gates.Thresholds.of(data.spec), 100, ("mae_gap", "relative_mae_gap"))
    assert gate.passed and not gate.judged
    assert gate.description.startswith("not judged: fewer than two slices have 100 holdout rows (rows per slice: ")
    judged = evaluated(dataclasses.replace(data, spec=dataclasses.replace(
        data.spec, gates=Gates(min_slice_rows=10))), "ridge")
    assert set(judged.candidate.fairness) == {"mae_gap", "relative_mae_gap"}


def test_multiclass_metrics_are_the_tasks_and_per_class_recall():
    data = wine()
    result = evaluated(data, "logistic_regression")
    assert set(result.candidate.metrics) == set(data.spec.metric_directions) == {
        "accuracy", "f1_macro", "f1_weighted", "roc_auc_ovr", "log_loss", "recall_class_0", "recall_class_1",
        "recall_class_2"}
    assert result.candidate.metrics["accuracy"] > 0.85 and result.candidate.roc == ([], [])
