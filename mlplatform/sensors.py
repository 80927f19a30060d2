"""Sensors: the landing zone watcher per spec, and the automation sensor for everything downstream."""

import json

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from mlplatform.partitions import landed_files
from mlplatform.resources import LandingZone
from mlplatform.specs import Spec


def landing_sensor(spec: Spec, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    parts = landed_files(spec)

    @dg.sensor(name=f"{spec.name}_landing_sensor", job=job, minimum_interval_seconds=30,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def watch(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
        """A new or changed landed file adds its partition and runs ingestion for that partition only."""
        from mlplatform.lib.landing import LandedFileError, content_hash

        seen: dict[str, list] = json.loads(context.cursor) if context.cursor else {}
        known = set(context.instance.get_dynamic_partitions(parts.name))
        requests, new_keys = [], []
        try:
            files = landing.files(spec)
        except LandedFileError as err:  # e.g. two files for one partition: nothing is ingested until it is fixed
            return dg.SensorResult(skip_reason=dg.SkipReason(str(err)), cursor=context.cursor)
        for partition, path in files.items():
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
            # The mtime keeps the key new when a file returns to an earlier content (A → B → A).
            requests.append(dg.RunRequest(partition_key=partition, run_key=f"{partition}:{digest}:{stat.st_mtime_ns}",
                                          tags={"mlplatform/file": path.name, "mlplatform/sha256": digest}))
        dynamic = [parts.build_add_request(new_keys)] if new_keys else []
        return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=dynamic, cursor=json.dumps(seen))

    return watch


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition("automation_sensor", target=dg.AssetSelection.all(),
                                                  default_status=dg.DefaultSensorStatus.RUNNING,
                                                  minimum_interval_seconds=30)
