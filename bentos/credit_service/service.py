"""The model service: feature rows in, default probabilities out, validated against the spec, behind API keys."""

from typing import Annotated, Any

import bentoml
from pydantic import BaseModel

from mlplatform.lib import serving
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


@bentoml.service(name=f"{SPEC.name}_service", workers=1, traffic={"timeout": 10})
class ModelService:
    """Serves one registered model version, packed into the Bento."""

    bento_model = bentoml.models.BentoModel(args.model_tag)

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.bento_model)
        self.lineage: dict[str, Any] = dict(self.bento_model.info.metadata)
        self.threshold = float(self.lineage.get("decision_threshold", SPEC.gates.decision_threshold))
        self.version = str(self.lineage.get("mlflow_version", self.bento_model.tag.version))

    @bentoml.api
    def predict(self, rows: Annotated[RowsType, RowsField]) -> dict[str, Any]:  # type: ignore[valid-type]
        """A batch of feature rows → probability of default and label per row."""
        proba, labels = serving.score(self.model, SPEC, rows, self.threshold)
        return {"request_id": serving.request_id(), "model": SPEC.model_name, "model_version": self.version,
                "probabilities": proba, "labels": labels}

    @bentoml.api(route="/info")
    def info(self) -> dict[str, Any]:
        """The served model version and its lineage (MLflow run, Dagster run, data version, git commit)."""
        return {"model": SPEC.model_name, "model_version": self.version, "bento_model": str(self.bento_model.tag),
                "decision_threshold": self.threshold, "lineage": self.lineage}


ModelService.add_asgi_middleware(serving.Guard, keys=serving.load_api_keys(), required=serving.auth_required(args.env))
