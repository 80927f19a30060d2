"""The model service: feature rows in, default probabilities out, validated against the spec, behind API keys.

`POST /predict` is answered by the hot path (`mlplatform.lib.hotpath`: the same request model, scorer and answer
as the `predict` API below, without BentoML's per-request dispatch, with micro-batching of concurrent requests);
MLPLATFORM_HOT_PATH=off routes it through BentoML's API dispatch instead.
"""

from typing import Annotated, Any

import bentoml
from pydantic import BaseModel

from mlplatform.lib import hotpath, serving
from mlplatform.specs import SPECS


class ServiceArgs(BaseModel):
    """Build/serve arguments (`bentoml build --arg`, `build_bentofile(args=...)`): which spec and model."""

    spec: str = SPECS[0].name
    model_tag: str = f"{SPECS[0].model_name}:latest"
    env: str = "local"


args = bentoml.use_arguments(ServiceArgs)
SPEC = next(s for s in SPECS if s.name == args.spec)
Row = serving.row_model(SPEC)
RowsType, RowsField = serving.rows_field(SPEC)
HOT = hotpath.Target()
HOT.enabled = serving.switch("hot_path", args.env)
VALIDATE = serving.switch("validation", args.env)


@bentoml.service(name=f"{SPEC.name}_service", workers=1, traffic={"timeout": 10},
                 **serving.service_config(args.env, ("/predict", "/info")))
class ModelService:
    """Serves one registered model version, packed into the Bento."""

    bento_model = bentoml.models.BentoModel(args.model_tag)

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.bento_model)
        self.lineage: dict[str, Any] = dict(self.bento_model.info.metadata)
        self.threshold = float(self.lineage.get("decision_threshold", SPEC.gates.decision_threshold))
        self.version = str(self.lineage.get("mlflow_version", self.bento_model.tag.version))
        self.scorer = serving.Scorer(self.model, SPEC)
        self.metrics = serving.PredictionMetrics(SPEC.model_name, serving.switch("metrics", args.env))
        HOT.bind(self.scorer, SPEC.model_name, self.version, self.threshold, self.metrics)

    @bentoml.api
    async def predict(self, rows: Annotated[RowsType, RowsField]) -> serving.Prediction:  # type: ignore[valid-type]
        """A batch of feature rows → probability of default and label per row."""
        proba, labels = self.scorer.score([r.model_dump() for r in rows], self.threshold)
        self.metrics.record(self.version, proba, labels)
        return serving.Prediction(request_id=serving.request_id(), model=SPEC.model_name, model_version=self.version,
                                  probabilities=proba, labels=labels)

    @bentoml.api(route="/info")
    def info(self) -> dict[str, Any]:
        """The served model version and its lineage (MLflow run, Dagster run, data version, git commit)."""
        return {"model": SPEC.model_name, "model_version": self.version, "bento_model": str(self.bento_model.tag),
                "decision_threshold": self.threshold, "lineage": self.lineage}

    if serving.switch("bentoml_batching", args.env, default=False):  # measured by benchmarks/bench_serving.py only
        @bentoml.api(route="/predict_batched", batchable=True, max_batch_size=1000, max_latency_ms=10)
        async def predict_batched(self, rows: list[Row]) -> list[float]:  # type: ignore[valid-type]
            """BentoML's adaptive batching of rows across requests (probabilities only)."""
            return self.scorer.proba([r.model_dump() for r in rows]).round(6).tolist()


ModelService.add_asgi_middleware(serving.Guard, keys=serving.load_api_keys(), required=serving.auth_required(args.env))
ModelService.add_asgi_middleware(hotpath.HotPath, target=HOT,
                                 request_model=serving.request_model(SPEC) if VALIDATE else serving.unchecked_request())
