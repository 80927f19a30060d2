"""Metrics and gates as plain functions, on real fitted models and demo data (no Dagster, no MLflow)."""

import numpy as np
import pandas as pd
import pytest

from mlplatform.lib.data.demo import credit_day
from mlplatform.lib.evaluation import gates, metrics
from mlplatform.lib.features.featurize import featurize
from mlplatform.lib.training.train import TrainParams, fit
from mlplatform_tests.pipelines import CREDIT

G = CREDIT.gates
THRESHOLDS = gates.Thresholds.of(CREDIT)


def frame(days: int = 5, rows: int = 1000) -> pd.DataFrame:
    raw = pd.concat([credit_day(d, rows) for d in range(days)], ignore_index=True)
    return featurize(raw, CREDIT).assign(**{CREDIT.label: raw[CREDIT.label], "age_band": raw["age_band"]})


@pytest.fixture(scope="module")
def fitted():
    data = frame()
    model, _, holdout = fit(data, CREDIT, TrainParams("logistic_regression", 1.0, 1000, 42, 2))
    weak, _, _ = fit(data, CREDIT, TrainParams("logistic_regression", 1e-5, 1000, 42, 2))
    return model, weak, holdout


def test_calibration_error_is_zero_when_scores_match_observed_rates_and_the_gap_otherwise():
    y = np.array([0, 1] * 50)
    assert metrics.expected_calibration_error(y, np.full(100, 0.5)) == 0.0
    assert metrics.expected_calibration_error(y, np.full(100, 0.9)) == pytest.approx(0.4)


def test_metrics_agree_with_the_definitions_on_a_tiny_example():
    y, scores = np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9])
    m = metrics.classification_metrics(y, scores, threshold=0.5)
    assert m["roc_auc"] == 0.75 and m["precision"] == 0.5 and m["recall"] == 0.5 and m["accuracy"] == 0.5
    assert m["brier"] == pytest.approx(np.mean((scores - y) ** 2))


def test_floors_name_the_metric_its_value_and_the_floor(fitted):
    model, weak, holdout = fitted
    good = metrics.evaluate(model, None, holdout, CREDIT, G.decision_threshold, G.min_slice_rows, 42)
    assert gates.floors(good, THRESHOLDS).passed
    strict = gates.Thresholds({"roc_auc": 0.99}, {"brier": 0.01}, {}, {}, {})
    result = gates.floors(good, strict)
    assert not result.passed
    assert result.description.startswith("roc_auc 0.") and "< floor 0.9900; brier 0." in result.description
    assert result.numbers["roc_auc"]["floor"] == 0.99


def test_unknown_metric_in_the_thresholds_is_named(fitted):
    model, _, holdout = fitted
    good = metrics.evaluate(model, None, holdout, CREDIT, 0.3, 100, 42)
    with pytest.raises(ValueError, match=r"floors: unknown metric\(s\) \['auc'\]; expected some of accuracy, brier"):
        gates.floors(good, gates.Thresholds({"auc": 0.7}, {}, {}, {}, {}))


def test_no_regression_compares_on_the_same_rows_with_absolute_and_relative_tolerances(fitted):
    model, weak, holdout = fitted
    worse = metrics.evaluate(weak, model, holdout, CREDIT, 0.3, 100, 42)
    assert worse.candidate.metrics["roc_auc"] < worse.champion.metrics["roc_auc"]
    drop = worse.champion.metrics["roc_auc"] - worse.candidate.metrics["roc_auc"]
    tight = gates.Thresholds({}, {}, {"roc_auc": drop / 2}, {}, {})
    assert not gates.no_regression(worse, tight, "4").passed
    assert "vs champion v4" in gates.no_regression(worse, tight, "4").description
    loose = gates.Thresholds({}, {}, {"roc_auc": drop * 2}, {"roc_auc": 1.0}, {})
    assert gates.no_regression(worse, loose, "4").passed
    lower_is_better = gates.Thresholds({}, {}, {"log_loss": 0.0}, {}, {})
    better = metrics.evaluate(model, weak, holdout, CREDIT, 0.3, 100, 42)
    assert gates.no_regression(better, lower_is_better, "4").passed  # a lower log loss is no regression


def test_fairness_leaves_small_slices_out_and_says_so(fitted):
    model, _, holdout = fitted
    counts = holdout["age_band"].value_counts()
    min_rows = int(counts.sort_values().iloc[1])  # the smallest slice falls below it
    result = metrics.evaluate(model, None, holdout, CREDIT, 0.3, min_rows, 42)
    outcome = gates.fairness(result, THRESHOLDS, min_rows)
    assert outcome.numbers["slices_below_min_rows"] == {"slices": [counts.idxmin()], "min_rows": min_rows}
    assert not result.candidate.slices.loc[counts.idxmin(), "judged"]


class Broken:
    """A model whose scores break the contract in one named way."""

    def __init__(self, model, kind: str) -> None:  # noqa: ANN001
        self.model, self.kind = model, kind

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        p = self.model.predict_proba(x)
        if self.kind == "nan":
            p[:3] = np.nan
        elif self.kind == "out_of_range":
            p = p * 2 - 0.5
        elif self.kind == "shape":
            p = p[:-1]
        return p


@pytest.mark.parametrize(("kind", "message"), [
    ("nan", "3 row(s) with non-finite output"),
    ("out_of_range", "probabilities outside [0, 1]"),
    ("shape", "output shape (1999,), expected (2000,)"),
])
def test_the_prediction_contract_names_what_is_broken(fitted, kind, message):
    model, _, holdout = fitted
    proba = Broken(model, kind).predict_proba(holdout[CREDIT.feature_names])
    result = gates.prediction_contract("binary", 2, len(holdout), proba[:, 1],
                                       model.predict_proba(holdout[CREDIT.feature_names])[:, 1])
    assert not result.passed and message in result.description


def test_the_prediction_contract_catches_a_registered_model_that_scores_differently(fitted):
    model, weak, holdout = fitted
    x = holdout[CREDIT.feature_names]
    own = model.predict_proba(x)[:, 1]
    assert gates.prediction_contract("binary", 2, len(x), own, own).passed
    result = gates.prediction_contract("binary", 2, len(x), own, weak.predict_proba(x)[:, 1])
    assert not result.passed and "registered model's outputs differ from the trained pipeline's" in result.description
