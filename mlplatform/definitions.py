"""The definitions of pipelines: each spec's assets, checks, jobs, sensors and schedule, and what a project has
once (resources on its home's settings, the executor, the automation and dead-run sensors). A project's code
location is `mlplatform.project.definitions`."""

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
from mlplatform.settings import Settings
from mlplatform.specs import Spec

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
        "feast": FeastStore(feast_dir=str(settings.feast_dir), repo_path=str(settings.feast_dir),
                            online_store=settings.feast_online_store, redis_connection=settings.redis_connection,
                            registry=settings.feast_registry, project=settings.feast_project),
        "mlflow": MlflowTracking(tracking_uri=settings.mlflow_tracking_uri,
                                 artifact_root=str(settings.home / "mlflow" / "artifacts")),
        "artifacts": Artifacts(root=str(settings.home / "artifacts")),
        "bentos": BentoStore(home=str(settings.bentoml_home), env=settings.env),
        "deployment": DeploymentTarget(root=str(settings.deployments_dir), bentoml_home=str(settings.bentoml_home),
                                       staging_port=settings.staging_port, production_port=settings.production_port,
                                       feast_dir=str(settings.feast_dir),
                                       feast_online_store=settings.feast_online_store,
                                       redis_connection=settings.redis_connection,
                                       feast_registry=settings.feast_registry, feast_project=settings.feast_project),
        "io_manager": RunStorage(base_dir=str(settings.io_dir), lock=RunLock(
            path=str(settings.run_lock), timeout_s=settings.run_lock_timeout, per_run=settings.production)),
    }


def pipeline_definitions(spec: Spec, settings: Settings, sources: Sources = CHECKOUT) -> dg.Definitions:
    """One pipeline: its assets from the layer factories, its jobs (`<pipeline>_ingest_job`, ...), sensors and
    schedule, and its spec as metadata. `sources` is the checkout the code versions are read from."""
    from mlplatform.project import spec_metadata

    promotion, retraining = spec.promotion or settings.promotion, spec.retraining or settings.retraining
    assets = data.build(spec, sources) + features.build(spec, sources)
    assets += training.build(spec, retraining, sources) + evaluation.build(spec, sources)
    assets += deployment.build(spec, promotion, sources) + monitoring.build(spec, sources)
    ingest, train = jobs.ingest_job(spec), jobs.training_job(spec, promotion)
    watch, back = jobs.monitoring_job(spec), jobs.rollback_job(spec)
    return dg.Definitions(
        assets=assets, jobs=[ingest, train, jobs.promote_job(spec), watch, back],
        sensors=[sensors.landing_sensor(spec, ingest), sensors.retrain_sensor(spec, train, retraining),
                 sensors.rollback_sensor(spec, back)],
        schedules=[sensors.monitoring_schedule(spec, watch)], metadata=spec_metadata(spec))


def platform_definitions(settings: Settings) -> dg.Definitions:
    """What every project has once, whatever its pipelines: the resources, the executor, the automation and
    dead-run sensors."""
    return dg.Definitions(sensors=[sensors.automation_sensor(settings.automation_interval),
                                   sensors.dead_run_sensor(settings.run_lock, settings.production)],
                          resources=resources(settings), executor=EXECUTOR)


def build_definitions(specs: Sequence[Spec], settings: Settings, sources: Sources = CHECKOUT) -> dg.Definitions:
    """The definitions of these specs, as a project declaring them would load."""
    return dg.Definitions.merge(*(pipeline_definitions(s, settings, sources) for s in specs),
                                platform_definitions(settings))
