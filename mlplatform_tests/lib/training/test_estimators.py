"""The user's own model: an estimator by built-in name, dotted class path or factory, with its params; missing
values imputed by the default preprocessing; every estimator registered in MLflow loads back and answers the same."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from mlplatform.lib import predictions
from mlplatform.lib.features.featurize import featurize
from mlplatform.lib.training import estimators, tracking
from mlplatform.lib.training.train import TrainParams, fit
from mlplatform.specs import Spec
from mlplatform_tests.datasets import Dataset, breast_cancer, diabetes, wine


def training_frame(data: Dataset) -> pd.DataFrame:
    return featurize(data.frame, data.spec).assign(**{data.spec.label: data.frame[data.spec.label].to_numpy()})


def params(estimator: str, **given: object) -> TrainParams:
    return TrainParams(estimator, 1.0, 200, 7, 2, dict(given))


def build_forest(n_estimators: int = 5) -> Pipeline:
    """A factory returning a whole Pipeline of its own (used as given)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("forest", RandomForestClassifier(n_estimators=n_estimators))])


def test_an_estimator_by_dotted_path_gets_its_params_and_the_seed_behind_the_default_preprocessing():
    data = wine()
    pipeline, _, holdout = fit(training_frame(data), data.spec,
                               params("sklearn.ensemble.RandomForestClassifier", n_estimators=7))
    model = pipeline[-1]
    assert type(model).__name__ == "RandomForestClassifier" and model.n_estimators == 7 and model.random_state == 7
    assert pipeline[0].__class__.__name__ == "ColumnTransformer"
    out = predictions.output(pipeline, holdout[data.spec.feature_names], data.spec)
    assert out.shape == (len(holdout), 3) and np.allclose(out.sum(axis=1), 1)


def test_a_factory_pipeline_is_used_as_given():
    data = breast_cancer()
    pipeline, _, _ = fit(training_frame(data), data.spec,
                         params("mlplatform_tests.lib.training.test_estimators:build_forest", n_estimators=3))
    assert [name for name, _ in pipeline.steps] == ["scale", "forest"] and pipeline[-1].n_estimators == 3


@pytest.mark.parametrize(("estimator", "given", "message"), [
    ("sklearn.ensemble.NoSuchForest", {}, "estimator 'sklearn.ensemble.NoSuchForest': 'sklearn.ensemble' has no "
                                          "class or function 'NoSuchForest'"),
    ("no_such_package.Model", {}, "estimator 'no_such_package.Model': cannot import 'no_such_package'"),
    ("sklearn.ensemble.RandomForestClassifier", {"trees": 3}, "estimator 'sklearn.ensemble.RandomForestClassifier': "
                                                               "unknown parameter(s) ['trees']"),
    ("ridge", {}, "estimator 'ridge' is for regression"),
    ("sklearn.linear_model.Ridge", {}, "a binary model must have predict_proba"),
])
def test_a_bad_estimator_path_or_param_is_named_before_anything_is_fitted(estimator, given, message):
    data = breast_cancer()
    with pytest.raises(estimators.EstimatorError) as err:
        estimators.build(data.spec, estimator, given, seed=1)
    assert message in str(err.value)


def test_nullable_features_are_imputed_and_a_missing_category_is_a_category_of_its_own():
    data = diabetes()  # bp is missing on every 17th row
    frame = training_frame(data)
    assert frame["bp"].isna().sum() > 20
    pipeline, _, holdout = fit(frame, data.spec, params("ridge"))
    out = predictions.output(pipeline, holdout[data.spec.feature_names], data.spec)
    assert np.isfinite(out).all()


def test_a_factory_pipeline_that_cannot_take_missing_values_fails_at_training_naming_the_estimator():
    data = diabetes()
    with pytest.raises(ValueError, match=r"diabetes: estimator 'mlplatform_tests.lib.training.test_estimators:"
                                         r"bare_linear' cannot take missing values \(Input X contains NaN.\); .* add "
                                         "an imputer to the factory's pipeline"):
        fit(training_frame(data), data.spec, params("mlplatform_tests.lib.training.test_estimators:bare_linear"))


def bare_linear() -> Pipeline:
    from sklearn.linear_model import LinearRegression

    return Pipeline([("model", LinearRegression())])


@pytest.mark.parametrize(("make", "estimator"), [(breast_cancer, "gradient_boosting"), (wine, "gradient_boosting"),
                                                 (diabetes, "gradient_boosting"), (wine, "lightgbm.LGBMClassifier")])
def test_every_estimator_is_registered_and_loads_back_from_mlflow_for_every_task(make, estimator, tmp_path,
                                                                                 migrated_mlflow_db):
    import shutil

    import mlflow
    from mlflow.tracking import MlflowClient

    data = make()
    spec = dataclasses.replace(data.spec, estimator=estimator, estimator_params=())
    pipeline, _, holdout = fit(training_frame(data), spec, params(estimator))
    db = tmp_path / "mlflow.db"
    shutil.copyfile(migrated_mlflow_db, db)
    uri = f"sqlite:///{db}"
    x = holdout[spec.feature_names]
    tracked = tracking.log_and_register(MlflowClient(uri), uri, str(tmp_path / "artifacts"), spec, pipeline, x,
                                        {"estimator": estimator}, {}, {"dagster.run_id": "run-1"})
    mlflow.set_tracking_uri(uri)
    loaded = mlflow.sklearn.load_model(tracked.model_uri)  # refused before: untrusted type TreePredictor
    assert np.array_equal(predictions.output(loaded, x, spec), predictions.output(pipeline, x, spec))


def test_the_spec_names_a_bad_task_setup_when_it_is_declared():
    base = breast_cancer().spec
    cases = {
        "positive_class 'yes' is not one of the classes ['malignant', 'benign']": {"positive_class": "yes"},
        "a binary task needs exactly 2 classes, got 3": {"classes": ("a", "b", "c"), "positive_class": "a"},
        "a multiclass task needs at least 3 classes, got 2": {"task": "multiclass"},
        "classes must be distinct integers or distinct strings": {"classes": (0, "1"), "positive_class": 0},
        "task 'ranking' is not one of binary, multiclass, regression": {"task": "ranking"},
    }
    for message, change in cases.items():
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
            dataclasses.replace(base, **change)


def test_a_spec_naming_a_metric_its_task_does_not_have_is_refused():
    from mlplatform.specs import Gates

    with pytest.raises(ValueError, match=r"gates.floors names unknown regression metric\(s\) \['roc_auc'\]"):
        dataclasses.replace(diabetes().spec, gates=Gates(floors=(("roc_auc", 0.7),)))


def test_a_partial_threshold_keeps_every_other_default_of_the_task():
    from mlplatform.specs import Gates
    from mlplatform_tests.pipelines import CREDIT

    spec: Spec = dataclasses.replace(CREDIT, gates=Gates(ceilings=(("expected_calibration_error", 0.15),)))
    assert spec.gate_thresholds["ceilings"] == {"brier": 0.2, "expected_calibration_error": 0.15}
    assert spec.gate_thresholds["floors"] == CREDIT.gate_thresholds["floors"] == {"roc_auc": 0.65, "pr_auc": 0.25}


def test_a_features_function_adds_its_columns_and_a_bad_one_is_named():
    from mlplatform_tests.datasets import cancer_features

    data = breast_cancer()
    features = featurize(data.frame, data.spec)
    expected = cancer_features(data.frame[data.spec.contract_feature_names])
    assert features.columns[-2:].tolist() == ["radius_x_texture", "log_area"]
    assert np.allclose(features["log_area"], expected["log_area"])
    broken = dataclasses.replace(data.spec, function_features=("radius_x_texture", "perimeter_ratio"))
    with pytest.raises(ValueError, match=r"features_function '.*:cancer_features' returned no column\(s\) "
                                         r"\['perimeter_ratio'\]"):
        featurize(data.frame, broken)
    with pytest.raises(ValueError, match="features_function and function_features go together"):
        dataclasses.replace(data.spec, function_features=())
