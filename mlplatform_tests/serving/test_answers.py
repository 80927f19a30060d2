"""Never a non-finite score with a 2xx: an unscorable row is a 422 naming it and its missing values, and one
request's unscorable rows do not fail the requests scored in the same batch."""

import asyncio
import dataclasses

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from mlplatform.lib.data.demo import credit_day
from mlplatform.lib.features.featurize import featurize
from mlplatform.lib.training.train import TrainParams, fit
from mlplatform.serving.answer import Answers, Unscorable
from mlplatform.serving.asgi import send_json
from mlplatform.serving.hotpath import HotPath, MicroBatcher, Target
from mlplatform.serving.metrics import PredictionMetrics
from mlplatform.serving.predlog import PredictionLog
from mlplatform.serving.request import request_model
from mlplatform.serving.scorer import Scorer
from mlplatform_tests.conftest import ROW
from mlplatform_tests.pipelines import CREDIT

# the demo spec with income declared nullable: requests may omit it, the default pipeline cannot score a null
NULLABLE = dataclasses.replace(CREDIT, numeric=tuple(dataclasses.replace(c, nullable=True) if c.name == "income"
                                                     else c for c in CREDIT.numeric))


@pytest.fixture(scope="module")
def pipeline():
    raw = pd.concat([credit_day(d, 300) for d in range(4)], ignore_index=True)
    frame = featurize(raw, CREDIT).assign(**{CREDIT.label: raw[CREDIT.label]})
    return fit(frame, CREDIT, TrainParams("logistic_regression", 1.0, 200, 42, 2))[0]


def test_a_non_finite_score_is_refused_naming_the_row_and_its_missing_values():
    answers = Answers(CREDIT, "1", 0.3, PredictionMetrics("credit_model", enabled=False))
    rows = [ROW, {**ROW, "income": None}]
    with pytest.raises(Unscorable, match=r"cannot score row 1 \(missing values in income\)"):
        answers.build(np.array([0.2, np.nan]), rows)
    assert answers.build(np.array([0.2, 0.9]), rows).labels == [0, 1]


def hot_path_app(pipeline, spec):  # noqa: ANN001, ANN201
    async def fallback(scope, receive, send):  # noqa: ANN001, ANN202 - what BentoML would answer otherwise
        await send_json(send, 404, {"error": "not the hot path"})

    target = Target()
    target.bind(Scorer(pipeline, spec), Answers(spec, "1", 0.3, PredictionMetrics(spec.model_name, False)),
                PredictionLog(None, spec.model_name, "1"))
    return HotPath(fallback, target, request_model(spec)), target


@pytest.mark.parametrize("compiled", [True, False])
def test_the_hot_path_answers_a_null_the_model_cannot_score_with_a_422(pipeline, compiled):
    app, target = hot_path_app(pipeline, NULLABLE)
    assert target.batcher is not None
    target.batcher.scorer.compiled = compiled  # the compiled scorer yields NaN; the pipeline raises on NaN
    client = TestClient(app)  # no lifespan: the hot path is middleware, BentoML's app handles that
    answer = client.post("/predict", json={"rows": [ROW, {**ROW, "income": None}]})
    assert answer.status_code == 422, answer.text
    assert "cannot score" in answer.json()["error"] and "income" in answer.json()["error"]
    good = client.post("/predict", json={"rows": [ROW]})
    assert good.status_code == 200 and np.isfinite(good.json()["probabilities"]).all()


def test_one_requests_unscorable_rows_do_not_fail_the_others_in_its_batch(pipeline):
    scorer = Scorer(pipeline, NULLABLE)
    scorer.compiled = False  # the pipeline itself refuses NaN with a ValueError

    async def together() -> list:
        batcher = MicroBatcher(scorer)
        return await asyncio.gather(batcher.output([ROW]), batcher.output([{**ROW, "income": None}]),
                                    batcher.output([ROW, ROW]), return_exceptions=True)

    first, bad, third = asyncio.run(together())
    assert isinstance(bad, ValueError)
    assert len(first) == 1 and len(third) == 2 and np.isfinite(np.concatenate([first, third])).all()
