"""The code location: every spec's assets, checks, jobs, sensors and schedules, with resources on the embedded
defaults."""

from collections.abc import Sequence
from typing import TypedDict

import dagster as dg

from mlplatform import jobs, sensors
from mlplatform.assets import data, deployment, evaluation, features, monitoring, training
from mlplatform.code_versions import CHECKOUT, Sources
from mlplatform.resources import (
    Artifacts,
    BentoStore,
    DeploymentTarget,
    FeastStore,
    LandingZone,
    MlflowTracking,
    Quarantine,
    RunLock,
    RunStorage,
)
from mlplatform.settings import PROJECT, Settings, get_settings, protect_created_files
from mlplatform.specs import SPECS, Spec

FEATURE_REPO = PROJECT / "feature_repo"
# Every run (the jobs and the runs the automation sensor asks for) executes its steps in one process: they are pandas
# work on one machine, and the multiprocess executor's fresh interpreter per step costs seconds of imports per asset,
# more than the steps themselves take on a day of data.
EXECUTOR = dg.in_process_executor


class Resources(TypedDict):
    """The code location's resources, by resource key."""

    landing: LandingZone
    quarantine: Quarantine
    feast: FeastStore
    mlflow: MlflowTracking
    artifacts: Artifacts
    bentos: BentoStore
    deployment: DeploymentTarget
    io_manager: RunStorage


def resources(settings: Settings) -> Resources:
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
                                       feast_dir=str(settings.feast_dir),
                                       feast_online_store=settings.feast_online_store,
                                       redis_connection=settings.redis_connection),
        "io_manager": RunStorage(base_dir=str(settings.io_dir), lock=RunLock(
            path=str(settings.run_lock), timeout_s=settings.run_lock_timeout)),
    }


def build_definitions(specs: Sequence[Spec], settings: Settings, sources: Sources = CHECKOUT) -> dg.Definitions:
    """Assets of each spec from the layer factories; the first spec's jobs carry the plain names. `sources` is the
    checkout the code versions are read from."""
    assets, all_jobs, all_sensors, schedules = [], [], [], []
    for index, spec in enumerate(specs):
        assets += data.build(spec, sources) + features.build(spec, sources)
        assets += training.build(spec, settings.retraining, sources) + evaluation.build(spec, sources)
        assets += deployment.build(spec, settings.promotion, sources) + monitoring.build(spec, sources)
        primary = index == 0
        ingest, train = jobs.ingest_job(spec, primary), jobs.training_job(spec, primary, settings.promotion)
        watch, back = jobs.monitoring_job(spec, primary), jobs.rollback_job(spec, primary)
        all_jobs += [ingest, train, jobs.promote_job(spec, primary), watch, back]
        all_sensors += [sensors.landing_sensor(spec, ingest), sensors.retrain_sensor(spec, train, settings.retraining),
                        sensors.rollback_sensor(spec, back)]
        schedules.append(sensors.monitoring_schedule(spec, watch))
    all_sensors += [sensors.automation_sensor(settings.automation_interval), sensors.dead_run_sensor(settings.run_lock)]
    return dg.Definitions(assets=assets, jobs=all_jobs, sensors=all_sensors, schedules=schedules,
                          resources=resources(settings), executor=EXECUTOR)


protect_created_files()  # in every process that loads the code location: the daemon's, a run's, the UI's
defs = build_definitions(SPECS, get_settings())
