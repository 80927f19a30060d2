"""Monitoring layer: what the served models answered, collected per day from the prediction logs."""

import dagster as dg

from mlplatform.assets import key, table
from mlplatform.partitions import SERVING_DAYS
from mlplatform.resources import DeploymentTarget
from mlplatform.specs import Spec

GROUP = "monitoring"


def build(spec: Spec) -> list[dg.AssetsDefinition]:
    @dg.asset(key=key(spec, "predictions"), deps=[key(spec, "staging"), key(spec, "production")],
              partitions_def=SERVING_DAYS, group_name=GROUP, code_version="1", kinds={"pandas"})
    def predictions(context: dg.AssetExecutionContext, deployment: DeploymentTarget) -> dg.Output:
        """Every row the staging and production services scored on the day (UTC), with version and role."""
        from mlplatform.lib.deployment import ENVIRONMENTS
        from mlplatform.lib.hashing import frame_version
        from mlplatform.lib.predlog import day_frame

        deployments = deployment.deployer().deployments
        folders = {env: deployments.predictions_dir(env) for env in ENVIRONMENTS}
        frame = day_frame(folders, context.partition_key, spec)
        summary = (frame.groupby(["env", "model_version", "role"]).agg(requests=("request_id", "nunique"),
                                                                       rows=("request_id", "size"),
                                                                       mean_probability=("probability", "mean"))
                   .round(4).reset_index())
        return dg.Output(frame, data_version=dg.DataVersion(frame_version(frame)), metadata={
            "dagster/row_count": len(frame), "requests": int(frame["request_id"].nunique()),
            "by_version": table(summary), "positive_rate": float(frame["label"].mean()) if len(frame) else 0.0})

    return [predictions]
