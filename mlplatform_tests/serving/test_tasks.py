"""Serving answers per task: the compiled scorer gives exactly the pipeline's output for binary (named classes),
multiclass and regression models, missing values included, and the answer has the task's fields."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from mlplatform.lib import predictions
from mlplatform.lib.features.featurize import featurize
from mlplatform.lib.training.train import TrainParams, fit
from mlplatform.serving.answer import Answers
from mlplatform.serving.metrics import PredictionMetrics
from mlplatform.serving.request import flat_outputs, prediction_model, request_model
from mlplatform.serving.scorer import Scorer
from mlplatform.specs import MISSING_CATEGORY, Categorical
from mlplatform_tests.datasets import Dataset, breast_cancer, diabetes, wine


def plain_cancer() -> Dataset:
    """The binary dataset without its features function (so that the compiled scorer serves it)."""
    data = breast_cancer()
    return Dataset(dataclasses.replace(data.spec, features_function="", function_features=()), data.frame)


def fitted(data: Dataset, estimator: str) -> tuple:
    frame = featurize(data.frame, data.spec).assign(**{data.spec.label: data.frame[data.spec.label].to_numpy()})
    pipeline, _, _ = fit(frame, data.spec, TrainParams(estimator, 1.0, 300, 3, 2))
    rows = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in data.frame[data.spec.contract_feature_names].to_dict("records")]
    return pipeline, rows


@pytest.mark.parametrize(("make", "estimator"), [(breast_cancer, "logistic_regression"),
                                                 (plain_cancer, "logistic_regression"),
                                                 (wine, "logistic_regression"), (wine, "gradient_boosting"),
                                                 (diabetes, "ridge"), (diabetes, "gradient_boosting")])
def test_the_compiled_scorer_gives_the_pipelines_output_for_every_task(make, estimator):
    data = make()
    pipeline, rows = fitted(data, estimator)
    scorer = Scorer(pipeline, data.spec)
    x = featurize(pd.DataFrame(rows), data.spec, keys=False)[data.spec.feature_names]
    expected = predictions.output(pipeline, x, data.spec)
    assert scorer.compiled == (not data.spec.features_function)  # a features function is called through featurize
    assert np.abs(scorer.output(rows) - expected).max() < 1e-9
    assert np.abs(scorer.output(rows[:1]) - expected[:1]).max() < 1e-9


def test_answers_have_the_fields_of_their_task_and_agree_with_the_schema():
    for make, fields in ((breast_cancer, {"probabilities", "labels"}), (wine, {"probabilities", "labels"}),
                         (diabetes, {"values"})):
        data = make()
        pipeline, rows = fitted(data, "logistic_regression" if data.spec.is_classification else "ridge")
        answers = Answers(data.spec, "1", 0.3, PredictionMetrics(data.spec.model_name, enabled=False))
        answer = answers.build(Scorer(pipeline, data.spec).output(rows[:3]), rows[:3])
        assert type(answer).model_json_schema() == prediction_model(data.spec).model_json_schema()
        assert set(answer.outputs()) == fields
        body = answer.model_dump()
        assert len(flat_outputs(body)) == 3 * (3 if data.spec.task == "multiclass" else 1)
        if data.spec.task == "multiclass":
            assert all(list(p) == ["class_0", "class_1", "class_2"] for p in body["probabilities"])
            assert body["labels"] == [max(p, key=p.get) for p in body["probabilities"]]
        if data.spec.task == "binary":
            assert set(body["labels"]) <= {"malignant", "benign"}


def test_a_label_outside_the_declared_classes_is_refused_by_the_answer_schema():
    data = breast_cancer()
    model = prediction_model(data.spec)
    with pytest.raises(ValueError, match="malignant"):
        model(request_id="a", model="m", model_version="1", probabilities=[0.5], labels=["healthy"])


def test_a_null_in_a_nullable_feature_is_imputed_not_answered_as_null():
    data = diabetes()
    pipeline, rows = fitted(data, "ridge")
    null = next(r for r in rows if r["bp"] is None)
    request = request_model(data.spec).model_validate({"rows": [null]})  # a null is valid for a nullable feature
    out = Scorer(pipeline, data.spec).output([r.model_dump() for r in request.rows])
    assert np.isfinite(out).all()


def test_a_missing_category_is_a_category_of_its_own_in_training_and_in_serving():
    data = breast_cancer()
    size = Categorical("size", ("small", "large"), nullable=True)
    spec = dataclasses.replace(data.spec, categorical=(size,), features_function="", function_features=())
    frame = data.frame.assign(size=np.where(data.frame["mean_radius"] > 14, "large", None))
    features = featurize(frame, spec)
    assert set(features["size"]) == {"large", MISSING_CATEGORY}
    labelled = features.assign(**{spec.label: frame[spec.label].to_numpy()})
    pipeline, _, _ = fit(labelled, spec, TrainParams("logistic_regression", 1.0, 300, 3, 2))
    rows = frame[spec.contract_feature_names].head(40).to_dict("records")
    scorer = Scorer(pipeline, spec)
    expected = predictions.output(pipeline, featurize(pd.DataFrame(rows), spec, keys=False)[spec.feature_names], spec)
    assert scorer.compiled and np.abs(scorer.output(rows) - expected).max() < 1e-9


def test_the_prediction_log_reads_back_each_tasks_answers(tmp_path, same_utc_day):
    import time

    from mlplatform.serving.predlog import PredictionLog, day_frame

    for make, answer, expected in (
            (wine, {"probabilities": [{"class_0": 0.1, "class_1": 0.7, "class_2": 0.2}], "labels": ["class_1"]},
             (0.7, "class_1", None)),
            (diabetes, {"values": [151.5]}, (None, None, 151.5))):
        data = make()
        folder = tmp_path / data.spec.name
        row = {k: (None if isinstance(v, float) and np.isnan(v) else v)
               for k, v in data.frame[data.spec.contract_feature_names].iloc[1].to_dict().items()}
        PredictionLog(folder, data.spec.model_name, "1").append("a" * 32, [row], answer, role="primary")
        frame = day_frame({"production": folder}, time.strftime("%Y-%m-%d", time.gmtime()), data.spec)
        got = frame.iloc[0]
        assert (got["probability"] if expected[0] is not None else None, got["label"], got["value"]) == expected


def test_a_bento_without_a_usable_explainer_says_why(tmp_path):
    from mlplatform.serving.explain import Explanations, NoExplainer

    data = diabetes()
    pipeline, rows = fitted(data, "ridge")
    missing = Explanations(data.spec, Scorer(pipeline, data.spec), tmp_path / "explainer.json", "1")
    with pytest.raises(NoExplainer, match="packaged without an explainer"):
        missing.answer(rows[:1])
    (tmp_path / "explainer.json").write_text('{"problem": "no SHAP explainer reproduces this pipeline\'s outputs"}')
    refused = Explanations(data.spec, Scorer(pipeline, data.spec), tmp_path / "explainer.json", "1")
    with pytest.raises(NoExplainer, match="this model has no explainer: no SHAP explainer reproduces"):
        refused.answer(rows[:1])


@pytest.mark.parametrize(("make", "estimator"), [(plain_cancer, "logistic_regression"), (wine, "gradient_boosting"),
                                                 (diabetes, "ridge"), (breast_cancer, "logistic_regression")])
def test_explain_on_the_scorers_preprocessing_gives_the_evaluations_contributions(tmp_path, make, estimator):
    from mlplatform.lib import explanations
    from mlplatform.serving.explain import Explanations

    data = make()
    pipeline, rows = fitted(data, estimator)
    frame = featurize(pd.DataFrame(rows), data.spec, keys=False)[data.spec.feature_names]
    explainer = explanations.Explainer(pipeline, data.spec, frame.sample(100, random_state=1), seed=3)
    (tmp_path / "explainer.json").write_text(explanations.packed(explainer))
    scorer = Scorer(pipeline, data.spec)
    served = Explanations(data.spec, scorer, tmp_path / "explainer.json", "1").answer(rows[:20])
    expected = explainer.explain(frame.head(20)).rows()
    assert scorer.compiled == (not data.spec.features_function)  # else: the frame path
    assert len(served.contributions) == 20
    for got, want in zip(served.contributions, expected, strict=True):
        for output in want:
            assert got[output] == pytest.approx(want[output], abs=2e-6)
