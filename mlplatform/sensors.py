"""Sensors and schedules: the landing zone watcher per spec, the monitoring schedule, the retraining and rollback
triggers, and the automation sensor for everything downstream."""

import inspect
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import dagster as dg

from mlplatform.assets._shared import key
from mlplatform.jobs import INGEST_ASSETS, AssetJob, rollback_op
from mlplatform.lib.monitoring import triggers
from mlplatform.orchestration import freshness
from mlplatform.partitions import file_partitions
from mlplatform.resources import DeploymentTarget, LandingZone, MlflowTracking
from mlplatform.specs import Spec

HISTORY = 1000  # newest materializations read per monitoring asset


def _described(decorator: Callable[..., Any], **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
    """`decorator(**kwargs)` with the function's docstring as the description the UI shows."""
    return lambda fn: decorator(description=inspect.getdoc(fn), **kwargs)(fn)


def landing_sensor(spec: Spec, job: AssetJob) -> dg.SensorDefinition:
    parts = file_partitions(spec)

    @_described(dg.sensor, name=f"{spec.name}_landing_sensor", job=job, minimum_interval_seconds=30,
                default_status=dg.DefaultSensorStatus.RUNNING)
    def watch(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
        """A new or changed landed file adds its partition and runs ingestion for that partition only."""
        from mlplatform.lib.data.landing import content_hash

        seen: dict[str, list] = json.loads(context.cursor) if context.cursor else {}
        # The Feast registry joins an ingest run only when it is missing or stale (its own code version).
        registry = key(spec, "feature_registry")
        assert context.repository_def is not None  # the daemon evaluates sensors within their code location
        fresh = not freshness.reasons(context.instance, context.repository_def.asset_graph, registry)
        selection = [key(spec, n) for n in INGEST_ASSETS if not (fresh and n == "feature_registry")]
        contract = context.repository_def.asset_graph.get(key(spec, "validated")).code_version
        assert parts.name is not None
        known = set(context.instance.get_dynamic_partitions(parts.name))
        requests, new_keys = [], []
        listing = landing.listing(spec)
        for name, why in listing.refused.items():  # in the tick's log, every tick while it is there
            context.log.warning(f"{landing.folder(spec) / name}: refused: {why}")
        for name, why in listing.ignored.items():
            if not name.startswith("."):  # a hidden file is one being written: nothing to say
                context.log.info(f"{landing.folder(spec) / name}: ignored: {why}")
        for partition, path in listing.files.items():
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed between listing and reading
                continue
            previous = seen.get(partition)
            if previous and previous[:2] == [stat.st_mtime_ns, stat.st_size]:
                continue  # untouched since the last tick: skip hashing it again
            digest = content_hash(path)
            seen[partition] = [stat.st_mtime_ns, stat.st_size, digest]
            if partition not in known:
                new_keys.append(partition)
            if previous and previous[2] == digest:
                continue  # touched but identical content: nothing to rebuild
            if previous is None and partition in known:  # new to this cursor: ingested by someone else already?
                status = freshness.ingested(context.instance, spec.name, partition, digest, contract)
                if status is not None:  # `mlplatform ingest` read this content (or rejected it): no second run
                    if status == freshness.REJECTED:
                        context.log.info(f"{path}: {status}")
                    continue
            # The mtime keeps the key new when a file returns to an earlier content (A → B → A).
            requests.append(dg.RunRequest(partition_key=partition, run_key=f"{partition}:{digest}:{stat.st_mtime_ns}",
                                          asset_selection=selection,
                                          tags={"mlplatform/file": path.name, "mlplatform/sha256": digest}))
        dynamic = [parts.build_add_request(new_keys)] if new_keys else []
        return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=dynamic, cursor=json.dumps(seen))

    return watch


def dead_run_sensor(lock: Path, per_run: bool = False) -> dg.SensorDefinition:
    """`lock`: the home's run lock, or with `per_run` the folder of each run's own (Settings.run_lock)."""

    @_described(dg.sensor, name="dead_run_sensor", minimum_interval_seconds=60,
                default_status=dg.DefaultSensorStatus.RUNNING)
    def dead_runs(context: dg.SensorEvaluationContext, mlflow: MlflowTracking) -> dg.SkipReason:
        """Marks failed the runs of this home whose process died (killed, out of memory, a restart): they held no
        lock; their MLflow runs are ended as killed, and they can be re-executed from failure."""
        from mlplatform.orchestration.dead_runs import end_mlflow_runs, sweep

        dead = sweep(context.instance, lock, per_run=per_run)  # nothing while a run holds the lock
        if dead:  # MLflow is imported only then
            end_mlflow_runs(mlflow.client(), dead)
        for run_id in dead:
            context.log.warning(f"run {run_id} had no process left: marked failed")
        return dg.SkipReason(f"marked failed: {', '.join(dead)}" if dead else "no dead run")

    return dead_runs


def automation_sensor(interval: int) -> dg.AutomationConditionSensorDefinition:
    """Every asset's automation condition, evaluated each `interval` seconds (Settings.automation_interval)."""
    return dg.AutomationConditionSensorDefinition(
        "automation_sensor", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=interval,
        description="Asks for every downstream asset whose inputs' data versions or code version changed (the "
                    "training chain after new labels, drift after a landed file), never behind a failed blocking "
                    "check; a step that finds itself fresh skips.")


def monitoring_schedule(spec: Spec, job: AssetJob) -> dg.ScheduleDefinition:
    """Each hour, today's traffic so far; in the first hour of a day, the whole of yesterday's as well."""

    @_described(dg.schedule, name=f"{spec.name}_monitoring_schedule", job=job, cron_schedule="5 * * * *",
                execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING)
    def hourly(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        """Each hour at :05 UTC, the monitoring job for today's traffic so far (predictions, live drift, live
        performance); in the first hour of a day, for the whole of yesterday as well."""
        now = context.scheduled_execution_time
        days = [now.date()] + ([now.date() - timedelta(days=1)] if now.hour == 0 else [])
        return [dg.RunRequest(partition_key=str(day), run_key=f"{day}@{now:%Y-%m-%dT%H}",
                              tags={"mlplatform/trigger": "monitoring_schedule"}) for day in days]

    return hourly


def latest_per_partition(instance: dg.DagsterInstance, asset_key: dg.AssetKey, limit: int = HISTORY,
                         ) -> dict[str, dict[str, Any]]:
    """The newest materialization's metadata of each partition, newest first (plus its storage id under "_id")."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset_key), limit=limit).records
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        event = record.asset_materialization
        if event is not None and event.partition not in out:
            partition = cast(str, event.partition)  # the monitoring assets are partitioned
            out[partition] = {"_id": record.storage_id, **{k: v.value for k, v in event.metadata.items()}}
    return out


def drift_batches(instance: dg.DagsterInstance, spec: Spec, kind: str) -> list[triggers.Batch]:
    """Judged drift batches newest first: landed files in the order they were judged, days by date."""
    found = latest_per_partition(instance, key(spec, f"{kind}_drift"))
    order = sorted(found, reverse=True) if kind == "live" else list(found)
    return [triggers.Batch.from_metadata(kind, p, found[p], found[p]["_id"]) for p in order]


def performance_days(instance: dg.DagsterInstance, spec: Spec, limit: int | None = None) -> list[triggers.Day]:
    """Live performance per serving day, newest first: each production version's labelled rows and metrics."""
    found = latest_per_partition(instance, key(spec, "live_performance"))
    return [triggers.Day.from_metadata(p, found[p], found[p]["_id"]) for p in sorted(found, reverse=True)[:limit]]


def unseen_labels(instance: dg.DagsterInstance, spec: Spec) -> tuple[list[str], str, int]:
    """Label partitions materialized after the newest training set, that training set's data version and its
    storage id (0 before any)."""
    latest = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key(spec, "training_set")), limit=1)
    trained = latest.records[0] if latest.records else None
    after = trained.storage_id if trained else 0
    labels = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key(spec, "labels"),
                                                                   after_storage_id=after), limit=HISTORY).records
    version = freshness.tags_of(trained).get("dagster/data_version", "") if trained else ""
    # the labels asset is partitioned by landed file: each materialization names its partition
    partitions = {cast(str, freshness.materialization_of(r).partition) for r in labels}
    return sorted(partitions), version or triggers.NEVER_TRAINED, after


def retrain_sensor(spec: Spec, job: AssetJob, retraining: str = "on_new_data",
                   ) -> dg.SensorDefinition:
    """`retraining="on_trigger"`: automation does not train, so this sensor also starts the first training."""

    @_described(dg.sensor, name=f"{spec.name}_retrain_sensor", job=job, minimum_interval_seconds=60,
                default_status=dg.DefaultSensorStatus.RUNNING)
    def retrain(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Retrains (training set → model → gates → staging) when drift persists over
        `Monitoring.retrain_after_drifted_batches` batches or production's live performance is below its floor,
        and labels have landed that the current model has not learnt from; the run's tags say why."""
        instance = context.instance
        labels, trained_on, trained_at = unseen_labels(instance, spec)
        decision = triggers.retrain(drift_batches(instance, spec, "data"), drift_batches(instance, spec, "live"),
                                    performance_days(instance, spec, limit=1 + spec.monitoring.label_lookback_days),
                                    spec.monitoring, labels, trained_on, first_training=retraining == "on_trigger",
                                    trained_at=trained_at)
        if isinstance(decision, str):
            return dg.SensorResult(skip_reason=dg.SkipReason(decision))
        context.log.info(f"retraining {spec.name}: {decision.reason}")
        tags = {**decision.tags(), "mlplatform/evidence": json.dumps(decision.evidence)[:4000]}
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=decision.run_key, tags=tags)])

    return retrain


def rollback_sensor(spec: Spec, job: dg.JobDefinition) -> dg.SensorDefinition:
    @_described(dg.sensor, name=f"{spec.name}_rollback_sensor", job=job, minimum_interval_seconds=60,
                default_status=dg.DefaultSensorStatus.RUNNING)
    def rollback(context: dg.SensorEvaluationContext, deployment: DeploymentTarget) -> dg.SensorResult:
        """Rolls production back when the champion promoted last does worse live than the one it replaced (its
        headline metric worse by more than `Monitoring.rollback_tolerance` (an error metric: or
        `rollback_relative_tolerance` of the previous value), or its error rate above the maximum)."""
        deployments = deployment.deployer().deployments
        changes = [e for e in deployments.audit_entries("production")
                   if e.get("action") in ("deploy", "promote", "rollback", "automatic_rollback")]
        record = deployments.read("production")
        if not changes or record is None:
            return dg.SensorResult(skip_reason=dg.SkipReason("nothing is promoted to production"))
        days = performance_days(context.instance, spec, limit=spec.monitoring.rollback_lookback_days)
        decision = triggers.rollback(changes[-1], record.primary.model_version, days, spec.monitoring,
                                     deployment.error_rate("production"), spec.rollback_metric,
                                     spec.metric_directions.get(spec.rollback_metric, 1))
        if isinstance(decision, str):
            return dg.SensorResult(skip_reason=dg.SkipReason(decision))
        context.log.info(f"rolling {spec.name} production back: {decision.reason}")
        config = {"ops": {rollback_op(spec): {"config": {"reason": decision.reason,
                                                         "expected_version": decision.evidence["version"]}}}}
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=decision.run_key, run_config=config,
                                                           tags=decision.tags())])

    return rollback
