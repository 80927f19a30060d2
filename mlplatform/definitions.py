"""The code location: every spec's assets, checks, jobs and sensors, with resources on the embedded defaults."""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from mlplatform import jobs, sensors
from mlplatform.assets import data, deployment, evaluation, features, monitoring, training
from mlplatform.resources import (Artifacts, BentoStore, DeploymentTarget, FeastStore, LandingZone, MlflowTracking,
                                  Quarantine)
from mlplatform.settings import Settings, get_settings
from mlplatform.specs import SPECS, Spec

FEATURE_REPO = Path(__file__).resolve().parent.parent / "feature_repo"


def resources(settings: Settings) -> dict[str, object]:
    return {
        "landing": LandingZone(root=str(settings.landing_root)),
        "quarantine": Quarantine(root=str(settings.quarantine_dir)),
        "feast": FeastStore(feast_dir=str(settings.feast_dir), repo_path=str(FEATURE_REPO),
                            online_store=settings.feast_online_store, redis_connection=settings.redis_connection),
        "mlflow": MlflowTracking(tracking_uri=settings.mlflow_tracking_uri,
                                 artifact_root=str(settings.home / "mlflow" / "artifacts")),
        "artifacts": Artifacts(root=str(settings.home / "artifacts")),
        "bentos": BentoStore(home=str(settings.bentoml_home), env=settings.env),
        "deployment": DeploymentTarget(root=str(settings.deployments_dir), bentoml_home=str(settings.bentoml_home),
                                       staging_port=settings.staging_port, production_port=settings.production_port,
                                       feast_dir=str(settings.feast_dir), feast_online_store=settings.feast_online_store,
                                       redis_connection=settings.redis_connection),
        "io_manager": dg.FilesystemIOManager(base_dir=str(settings.io_dir)),
    }


def build_definitions(specs: Sequence[Spec], settings: Settings) -> dg.Definitions:
    """Assets of each spec from the layer factories; the first spec's jobs carry the plain names."""
    assets, all_jobs, all_sensors = [], [], []
    for index, spec in enumerate(specs):
        assets += data.build(spec) + features.build(spec) + training.build(spec) + evaluation.build(spec)
        assets += deployment.build(spec, settings.promotion) + monitoring.build(spec)
        ingest = jobs.ingest_job(spec, primary=index == 0)
        all_jobs += [ingest, jobs.training_job(spec, index == 0, settings.promotion),
                     jobs.promote_job(spec, index == 0)]
        all_sensors.append(sensors.landing_sensor(spec, ingest))
    all_sensors.append(sensors.automation_sensor())
    return dg.Definitions(assets=assets, jobs=all_jobs, sensors=all_sensors, resources=resources(settings))


defs = build_definitions(SPECS, get_settings())
