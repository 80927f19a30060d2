"""SHAP explanations of any model: the fastest explainer SHAP has for it, contributions per model feature (one-hot
columns summed back), that add up to the model's own output in the unit they are given in."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, softmax

from mlplatform.lib import explanations, predictions
from mlplatform.lib.data.demo import credit_day
from mlplatform.lib.features.featurize import featurize
from mlplatform.lib.training.train import TrainParams, fit
from mlplatform_tests.datasets import Dataset, breast_cancer, diabetes, wine
from mlplatform_tests.pipelines import CREDIT


def credit() -> Dataset:
    raw = pd.concat([credit_day(d, 300) for d in range(4)], ignore_index=True)
    return Dataset(CREDIT, raw)


def fitted(data: Dataset, estimator: str) -> tuple:
    frame = featurize(data.frame, data.spec).assign(**{data.spec.label: data.frame[data.spec.label].to_numpy()})
    pipeline, _, holdout = fit(frame, data.spec, TrainParams(estimator, 1.0, 300, 3, 2))
    return pipeline, holdout


def model_output_in(unit: str, totals: np.ndarray, spec) -> np.ndarray:
    """What base + contributions give, turned into the task's output (`lib/predictions.py`)."""
    if unit == "log_odds":
        return expit(totals[:, 0]) if spec.task == "binary" else softmax(totals, axis=1)
    return totals[:, 0] if totals.shape[1] == 1 else totals


@pytest.mark.parametrize(("make", "estimator", "method", "unit"), [
    (credit, "logistic_regression", "linear", "log_odds"),  # one-hot encoded categories
    (credit, "gradient_boosting", "tree", "log_odds"),
    (breast_cancer, "random_forest", "tree", "probability"),  # a features function's columns too
    (breast_cancer, "sklearn.neighbors.KNeighborsClassifier", "permutation", "probability"),
    (wine, "lightgbm.LGBMClassifier", "tree", "log_odds"),
    (wine, "logistic_regression", "linear", "log_odds"),
    (wine, "sklearn.neighbors.KNeighborsClassifier", "permutation", "probability"),
    (diabetes, "ridge", "linear", "value"),  # a nullable feature, imputed
    (diabetes, "sklearn.ensemble.HistGradientBoostingRegressor", "tree", "value"),
    (diabetes, "sklearn.neighbors.KNeighborsRegressor", "permutation", "value"),
])
def test_contributions_add_up_to_the_models_output_for_every_task_and_kind_of_model(make, estimator, method, unit):
    data = make()
    pipeline, holdout = fitted(data, estimator)
    explainer = explanations.Explainer(pipeline, data.spec, explanations.background(holdout, data.spec, 3), seed=3)
    assert (explainer.method, explainer.unit) == (method, unit)
    rows = explanations.explained_rows(holdout, data.spec, 3).head(30)
    explained = explainer.explain(rows)
    outputs = {"binary": 1, "multiclass": 3, "regression": 1}[data.spec.task]
    assert explained.values.shape == (len(rows), len(data.spec.feature_names), outputs)
    assert explained.features == list(data.spec.feature_names)
    expected = predictions.output(pipeline, rows, data.spec)
    assert np.abs(model_output_in(unit, explained.totals(), data.spec) - expected).max() < 1e-6
    assert np.abs(explained.values).sum() > 0


def test_a_categorical_features_one_hot_columns_are_one_contribution():
    data = credit()
    pipeline, holdout = fitted(data, "logistic_regression")
    explainer = explanations.Explainer(pipeline, CREDIT, explanations.background(holdout, CREDIT, 3), seed=3)
    rows = holdout[CREDIT.feature_names].head(5)
    explained = explainer.explain(rows)
    table = explained.rows()
    assert set(table[0]) == {"1"} and set(table[0]["1"]) == set(CREDIT.feature_names)
    assert {"home_ownership", "purpose"} <= set(CREDIT.feature_names)
    # each row's purpose contributes the coefficient of its own category against the background's mean encoding
    coef = pipeline[-1].coef_[0]
    names = list(pipeline[0].get_feature_names_out())
    columns = [i for i, n in enumerate(names) if n.startswith("categorical__purpose_")]
    encoded = pipeline[0].transform(rows)[:, columns]
    mean = pipeline[0].transform(explainer.background)[:, columns].mean(axis=0)
    purpose = explained.features.index("purpose")
    assert np.allclose(explained.values[:, purpose, 0], (encoded - mean) @ coef[columns], atol=1e-9)


def test_the_positive_class_decides_the_sign_of_a_binary_margin():
    data = breast_cancer()
    benign = dataclasses.replace(data.spec, positive_class="benign")
    pipeline, holdout = fitted(Dataset(benign, data.frame), "logistic_regression")
    explainer = explanations.Explainer(pipeline, benign, explanations.background(holdout, benign, 3), seed=3)
    rows = holdout[benign.feature_names].head(10)
    explained = explainer.explain(rows)
    assert explained.outputs == ["benign"] and pipeline.classes_[0] == "benign"
    assert np.abs(expit(explained.totals()[:, 0]) - predictions.output(pipeline, rows, benign)).max() < 1e-9


def test_the_packaged_explainer_explains_exactly_like_the_evaluations():
    data = wine()
    pipeline, holdout = fitted(data, "lightgbm.LGBMClassifier")
    explainer = explanations.Explainer(pipeline, data.spec, explanations.background(holdout, data.spec, 3), seed=3)
    again = explanations.unpacked(explanations.packed(explainer), pipeline, data.spec)
    rows = holdout[data.spec.feature_names].head(7)
    assert np.array_equal(again.explain(rows).values, explainer.explain(rows).values)
    knn, held = fitted(data, "sklearn.neighbors.KNeighborsClassifier")  # seeded permutations: the same numbers
    agnostic = explanations.Explainer(knn, data.spec, explanations.background(held, data.spec, 3), seed=3)
    rebuilt = explanations.unpacked(explanations.packed(agnostic), knn, data.spec)
    assert np.allclose(rebuilt.explain(rows).values, agnostic.explain(rows).values, atol=1e-12)


def test_a_missing_value_the_pipeline_cannot_take_is_refused_not_explained():
    data = diabetes()
    pipeline, holdout = fitted(data, "ridge")  # a nullable feature: the pipeline imputes
    explainer = explanations.Explainer(pipeline, data.spec, explanations.background(holdout, data.spec, 3), seed=3)
    rows = holdout[data.spec.feature_names].head(3).assign(bp=np.nan)
    assert np.isfinite(explainer.explain(rows).values).all()
    pipeline, holdout = fitted(credit(), "logistic_regression")  # no nullable feature: no imputer
    explainer = explanations.Explainer(pipeline, CREDIT, explanations.background(holdout, CREDIT, 3), seed=3)
    with pytest.raises(ValueError, match="NaN"):
        explainer.explain(holdout[CREDIT.feature_names].head(3).assign(income=np.nan))


def test_top_features_rank_each_output_by_mean_absolute_contribution():
    data = wine()
    pipeline, holdout = fitted(data, "logistic_regression")
    explainer = explanations.Explainer(pipeline, data.spec, explanations.background(holdout, data.spec, 3), seed=3)
    explained = explainer.explain(explanations.explained_rows(holdout, data.spec, 3))
    top = explanations.top_features(explained, top=3)
    assert list(top["output"]) == ["class_0"] * 3 + ["class_1"] * 3 + ["class_2"] * 3
    strength = explained.mean_abs()
    for output, group in top.groupby("output"):
        assert list(group["feature"]) == list(strength[output].sort_values(ascending=False).index[:3])
        assert group["mean_abs_shap"].is_monotonic_decreasing
