"""The serving benchmark's peers: the same model and scoring code behind bare FastAPI (sync and async).

Run by `bench_serving.py` as `uvicorn benchmarks.serving_peers:sync_app` / `:async_app`; the fitted pipeline
is read from the joblib file named by MLPLATFORM_BENCH_PIPELINE, its spec from MLPLATFORM_BENCH_SPEC (JSON). The
answer has the task's fields, made by the same code as the Bento's (`Answers.fields`), without metrics.
"""

import os
from typing import Annotated, Any, cast

import joblib
from fastapi import FastAPI
from pydantic import BaseModel, Field

from mlplatform.serving.answer import Answers, request_id
from mlplatform.serving.metrics import PredictionMetrics
from mlplatform.serving.request import MAX_ROWS, row_model
from mlplatform.serving.scorer import Scorer
from mlplatform.specs import spec_from_json

SPEC = spec_from_json(open(os.environ["MLPLATFORM_BENCH_SPEC"]).read())
PIPELINE = joblib.load(os.environ["MLPLATFORM_BENCH_PIPELINE"])
SCORER = Scorer(PIPELINE, SPEC)
ANSWERS = Answers(SPEC, "1", 0.3, PredictionMetrics(SPEC.model_name, enabled=False))
Row = row_model(SPEC)


class Request(BaseModel):
    rows: Annotated[list[Row], Field(min_length=1, max_length=MAX_ROWS)]  # type: ignore[valid-type]


def _answer(request: Request) -> dict[str, Any]:
    out = SCORER.output([r.model_dump() for r in cast(list[BaseModel], request.rows)])
    return {"request_id": request_id(), "model": SPEC.model_name, "model_version": "1", **ANSWERS.fields(out)}


sync_app = FastAPI()
async_app = FastAPI()


@sync_app.post("/predict")
def predict_sync(request: Request) -> dict[str, Any]:
    return _answer(request)


@async_app.post("/predict")
async def predict_async(request: Request) -> dict[str, Any]:
    return _answer(request)
