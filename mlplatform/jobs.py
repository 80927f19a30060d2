"""Jobs: per-partition ingestion and the unpartitioned training chain (training set → model → evaluation, gates).

Every run executes in one process (the code location's default executor, `definitions.EXECUTOR`).
"""

from typing import Any, TypeAlias

import dagster as dg

from mlplatform.assets._shared import DEPLOY_POOL, key
from mlplatform.assets.deployment import observation
from mlplatform.resources import DeploymentTarget, MlflowTracking
from mlplatform.specs import Spec

# What dg.define_asset_job returns (its class is not part of Dagster's public API).
AssetJob: TypeAlias = Any

INGEST_ASSETS = ("feature_registry", "raw", "validated", "labels", "features")
TRAINING_ASSETS = ("training_set", "model", "evaluation", "bento", "staging")
MONITORING_ASSETS = ("predictions", "live_drift", "live_performance")
PROMOTE_ASSETS = ("production",)
# Each job's assets (by name within a spec); the plan names the job of a stale asset from this. Under automatic
# promotion `<pipeline>_training_job` also materializes production.
ASSETS_BY_JOB = {"ingest": INGEST_ASSETS, "training": TRAINING_ASSETS, "promote": PROMOTE_ASSETS,
                 "monitoring": MONITORING_ASSETS}


def job_name(spec_name: str, base: str) -> str:
    """A pipeline's jobs are named after it: `<pipeline>_ingest_job`, `<pipeline>_training_job`, ..."""
    return f"{spec_name}_{base}_job"


def ingest_job(spec: Spec) -> AssetJob:
    selection = dg.AssetSelection.assets(*(key(spec, n) for n in INGEST_ASSETS))
    return dg.define_asset_job(job_name(spec.name, "ingest"), selection=selection,  # partitioned as its assets
                               description=f"One landed file of {spec.name}: raw → validated → labels, features")


def training_job(spec: Spec, promotion: str = "manual") -> AssetJob:
    """Training set → model → evaluation (gates) → Bento → staging, and production under automatic promotion."""
    names = TRAINING_ASSETS + (("production",) if promotion == "automatic" else ())
    selection = dg.AssetSelection.assets(*(key(spec, n) for n in names))
    return dg.define_asset_job(job_name(spec.name, "training"), selection=selection,
                               description=f"The unpartitioned chain of {spec.name}, from the training set to "
                                           f"staging{' and production' if promotion == 'automatic' else ''}")


def promote_job(spec: Spec) -> AssetJob:
    """What staging serves, to production (`mlplatform promote` runs it)."""
    return dg.define_asset_job(job_name(spec.name, "promote"), selection=[key(spec, "production")],
                               description=f"Promote the version staging serves to production ({spec.name})")


def monitoring_job(spec: Spec) -> AssetJob:
    """One serving day: the logged predictions, their drift and the live performance of each version."""
    selection = dg.AssetSelection.assets(*(key(spec, n) for n in MONITORING_ASSETS))
    return dg.define_asset_job(job_name(spec.name, "monitoring"), selection=selection,  # partitioned by day
                               description=f"One UTC day of {spec.name}'s traffic: predictions → live drift, live "
                                           f"performance")


class RollbackConfig(dg.Config):
    """Why production rolls back, and the version it must still serve (else someone acted meanwhile: no-op)."""

    reason: str
    expected_version: str = ""


def rollback_op(spec: Spec) -> str:
    return f"{spec.name}__rollback_production"


def rollback_job(spec: Spec) -> dg.JobDefinition:
    """Production back to its previous deployment (the rollback sensor runs it; `mlplatform rollback` is the
    same operation by hand)."""

    @dg.op(name=rollback_op(spec), pool=DEPLOY_POOL)
    def rollback_production(context: dg.OpExecutionContext, config: RollbackConfig, deployment: DeploymentTarget,
                            mlflow: MlflowTracking) -> None:
        from mlplatform.deploy import promotion

        deployer = deployment.deployer()
        record = deployer.deployments.read("production")
        serving = record.primary.model_version if record else None
        if config.expected_version and serving != config.expected_version:
            context.log.warning(f"production serves v{serving}, not v{config.expected_version}: nothing rolled back")
            return
        trigger = {"trigger": context.run.tags.get("mlplatform/trigger", "manual"), "run_id": context.run_id}
        restored = promotion.rollback(deployer, mlflow.client(), spec, "production", config.reason, trigger)
        context.log_event(observation(spec, "production", deployer.deployments.audit_entries("production")[-1]))
        context.log.info(f"production serves v{restored.primary.model_version} again: {config.reason}")

    @dg.job(name=job_name(spec.name, "rollback"),
            description=f"Roll {spec.name}'s production back to its previous deployment")
    def rollback() -> None:
        rollback_production()

    return rollback
