"""The model service: feature rows (or entity ids, looked up in the Feast online store) in, the task's answer out
(probabilities and labels, or values), validated against the spec, behind API keys.

`POST /predict` is answered by the hot path (`mlplatform.serving.hotpath`: the same request model, scorer and
answer as the `predict` API below, without BentoML's per-request dispatch, with micro-batching of concurrent
requests); MLPLATFORM_HOT_PATH=off routes it through BentoML's API dispatch instead. Every MLPLATFORM_* variable
the service reads is in `mlplatform.serving.settings.ServingSettings`.
"""

import asyncio
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, cast

import bentoml
from pydantic import BaseModel, Field

from mlplatform.serving import auth, explain, hotpath, logs, online, predlog, request
from mlplatform.serving.answer import Answers, Unscorable, unscorable
from mlplatform.serving.metrics import PredictionMetrics
from mlplatform.serving.scorer import Scorer
from mlplatform.serving.settings import ServingSettings
from mlplatform.specs import spec_from_json


class ServiceArgs(BaseModel):
    """Build/serve arguments (`bentoml build --arg`, `build_bentofile(args=...)`): which spec and model."""

    spec: str = ""
    model_tag: str = ""
    env: str = "local"


args = bentoml.use_arguments(ServiceArgs)
logs.quiet_client_errors()  # a 400 is one log line, not a traceback
SETTINGS = ServingSettings.from_env(args.env)
# The Bento carries the spec of the pipeline it was built for (`mlplatform.deploy.packaging` writes it).
_PACKED_SPEC = Path(__file__).with_name("spec.json")
if not _PACKED_SPEC.exists():
    raise RuntimeError(f"{_PACKED_SPEC}: no spec. The service runs from a Bento the platform built for a pipeline.")
SPEC = spec_from_json(_PACKED_SPEC.read_text())
Answer = request.prediction_model(SPEC)
Row = request.row_model(SPEC)
RowsType, RowsField = request.rows_field(SPEC)
ExplainRowsType, ExplainRowsField = request.rows_field(SPEC, explain.MAX_EXPLAIN_ROWS)
HOT = hotpath.Target()
HOT.enabled = SETTINGS.hot_path
EntityIds = Annotated[list[request.EntityId], Field(min_length=1, max_length=request.MAX_ROWS)]


@bentoml.service(name=f"{SPEC.name}_service", workers=1, traffic={"timeout": 10},
                 **SETTINGS.service_config(("/predict", "/predict_entity", "/explain", "/info")))
class ModelService:
    """Serves one registered model version, packed into the Bento."""

    bento_model = bentoml.models.BentoModel(args.model_tag)

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.bento_model)
        self.lineage: dict[str, Any] = dict(self.bento_model.info.metadata)
        threshold = float(self.lineage.get("decision_threshold", SPEC.gates.decision_threshold))
        self.version = str(self.lineage.get("mlflow_version", self.bento_model.tag.version))
        self.threshold = threshold
        self.scorer = Scorer(self.model, SPEC)
        self.answers = Answers(SPEC, self.version, threshold,
                               PredictionMetrics(SPEC.model_name, SETTINGS.metrics))
        self.log = predlog.PredictionLog(SETTINGS.prediction_log_dir, SPEC.model_name, self.version,
                                         SETTINGS.smoke_token)
        HOT.bind(self.scorer, self.answers, self.log)
        self.explanations = explain.Explanations(SPEC, self.scorer, Path(__file__).with_name("explainer.json"),
                                                 self.version)
        self.online = online.OnlineFeatures(SPEC, SETTINGS.feast_dir, SETTINGS.feast_online_store,
                                            SETTINGS.redis, SETTINGS.feast_registry,
                                            SETTINGS.feast_project).open_in_background()

    @bentoml.api
    async def predict(self, rows: Annotated[RowsType, RowsField],  # type: ignore[valid-type]
                      ctx: bentoml.Context, entity_ids: request.EntityIdList = None,
                      ) -> Answer:  # type: ignore[valid-type]
        """A batch of feature rows → per row the task's answer (probability and label, class probabilities and
        label, or value). `entity_ids` (optional, one per
        row) are logged with the answers, so live performance can join the labels that land later."""
        problem = request.entity_ids_problem(len(rows), entity_ids)
        if problem:
            raise bentoml.exceptions.InvalidArgument(problem)
        return self._answer([r.model_dump() for r in cast("list[BaseModel]", rows)], ctx,
                            **({"entity_ids": entity_ids} if entity_ids else {}))

    def _answer(self, rows: list[dict[str, Any]], ctx: bentoml.Context, **logged: Any) -> request.Prediction:
        try:
            answer = self.answers.build(self.scorer.output(rows), rows)
        except ValueError as exc:  # the model refused the rows, or scored one as not a finite number
            raise bentoml.exceptions.UnprocessableEntity(str(unscorable(rows, exc))) from exc
        self.log.append(answer.request_id, rows, answer.outputs(),
                        predlog.role_of(ctx.request.headers.raw, self.log.smoke_token), **logged)
        return answer

    @bentoml.api(route="/predict_entity")
    async def predict_entity(self, entity_ids: EntityIds, ctx: bentoml.Context,
                             ) -> Answer:  # type: ignore[valid-type]
        """Entity ids → their features from the Feast online store (as training used them) → predictions."""
        try:
            rows = await asyncio.to_thread(self.online.rows, entity_ids)
        except online.UnknownEntities as err:
            raise bentoml.exceptions.NotFound(str(err)) from err
        except RuntimeError as err:
            raise bentoml.exceptions.ServiceUnavailable(str(err)) from err
        return self._answer(rows, ctx, entity_ids=entity_ids)

    @bentoml.api(route="/explain")
    async def explain(self, rows: Annotated[ExplainRowsType, ExplainRowsField],  # type: ignore[valid-type]
                      ) -> explain.Explained:
        """Feature rows (as for `/predict`, at most 20) → per row each feature's SHAP contribution to the model's
        output, from the explainer packaged with the model; base + contributions = the output, in `unit`."""
        try:
            return await self.explanations.answer_async([r.model_dump() for r in cast("list[BaseModel]", rows)])
        except explain.NoExplainer as exc:
            raise bentoml.exceptions.BentoMLException(str(exc), error_code=HTTPStatus.NOT_IMPLEMENTED) from exc
        except Unscorable as exc:
            raise bentoml.exceptions.UnprocessableEntity(str(exc)) from exc

    @bentoml.api(route="/info")
    def info(self) -> dict[str, Any]:
        """The served model version, its lineage (MLflow run, Dagster run, data version, git commit) and model card."""
        card = Path(__file__).with_name("model_card.md")
        return {"model": SPEC.model_name, "model_version": self.version, "bento_model": str(self.bento_model.tag),
                "decision_threshold": self.threshold, "lineage": self.lineage,
                "model_card": card.read_text() if card.exists() else None}

    if SETTINGS.bentoml_batching:  # measured by benchmarks/bench_serving.py only
        @bentoml.api(route="/predict_batched", batchable=True, max_batch_size=1000, max_latency_ms=10)
        async def predict_batched(self, rows: list[Row]) -> list[Any]:  # type: ignore[valid-type]
            """BentoML's adaptive batching of rows across requests (outputs only)."""
            return self.scorer.output([r.model_dump() for r in cast("list[BaseModel]", rows)]).round(6).tolist()


# `@bentoml.service` made the class a bentoml.Service (mypy keeps class decorators' classes as they are)
cast("bentoml.Service[ModelService]", ModelService).add_asgi_middleware(
    auth.Guard, keys=list(SETTINGS.api_keys), required=SETTINGS.auth_required)
cast("bentoml.Service[ModelService]", ModelService).add_asgi_middleware(
    hotpath.HotPath, target=HOT,
    request_model=request.request_model(SPEC) if SETTINGS.validation else request.unchecked_request())
