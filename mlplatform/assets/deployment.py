"""Deployment layer: a gated candidate packaged as a Bento (model store entry, Bento, container definition)."""

from pathlib import Path

import dagster as dg

from mlplatform.assets import DataFrame, key, rebuild_on_change
from mlplatform.resources import BentoStore, MlflowTracking
from mlplatform.specs import Spec

GROUP = "deployment"


def build(spec: Spec) -> list[dg.AssetsDefinition]:
    @dg.asset(key=key(spec, "bento"), ins={"model": dg.AssetIn(key(spec, "model")),
                                           "evaluation": dg.AssetIn(key(spec, "evaluation"))},
              group_name=GROUP, code_version="1", kinds={"bentoml", "docker"},
              automation_condition=rebuild_on_change(partitioned=False))
    def bento(context: dg.AssetExecutionContext, model: DataFrame, evaluation: DataFrame,
              bentos: BentoStore, mlflow: MlflowTracking) -> dg.MaterializeResult:
        """The candidate in the BentoML model store and a Bento built from bentos/credit_service with the lock file."""
        from mlplatform.lib import bento as packaging

        if not evaluation.passed:  # the blocking checks already stop this; never package a failed candidate
            raise dg.Failure(f"{evaluation.model} v{evaluation.version} failed its gates; nothing is packaged")
        reg, lineage = model.registered, model.lineage
        labels = {"mlflow_model": reg.name, "mlflow_version": reg.version, "dagster_run": context.run.run_id,
                  "data_version": model.training_set_version, "code_version": lineage["dagster.code_version"]}
        metadata = {**labels, "mlflow_run_id": reg.run_id, "git_commit": lineage.get("git.commit", ""),
                    "decision_threshold": spec.gates.decision_threshold, "roc_auc": evaluation.metrics["roc_auc"]}
        built = packaging.package(spec, reg.model_uri, mlflow.tracking_uri, Path(bentos.home), bentos.env, labels,
                                  metadata)
        return dg.MaterializeResult(data_version=dg.DataVersion(built.tag), metadata={
            "bento_tag": built.tag, "model_tag": built.model_tag, "models": dg.MetadataValue.json([built.model_tag]),
            "size_bytes": built.size_bytes, "path": dg.MetadataValue.path(str(built.path)),
            "dockerfile": dg.MetadataValue.path(str(built.dockerfile)),
            "registered_model": f"{reg.name} v{reg.version}"})

    return [bento]
