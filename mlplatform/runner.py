"""Running the jobs against the project's Dagster instance from the command line (demo, CI)."""

from dataclasses import dataclass, field

import dagster as dg

from mlplatform.settings import Settings
from mlplatform.specs import Spec


@dataclass
class Outcome:
    """What a command-line ingestion did, partition by partition."""

    partitions: dict[str, str] = field(default_factory=dict)
    training: str = "not run"
    ok: bool = True

    def report(self) -> str:
        lines = [f"  {key:32} {status}" for key, status in self.partitions.items()]
        return "\n".join(["ingestion:", *lines, f"training_set: {self.training}"])


def _failures(result: dg.ExecuteInProcessResult) -> str:
    checks = [c for c in result.get_asset_check_evaluations() if not c.passed]
    if checks:
        return "; ".join(f"check {c.asset_key.to_user_string()}:{c.check_name} failed: {c.description}" for c in checks)
    steps = [e for e in result.all_events if e.is_step_failure]
    return "; ".join(f"{e.step_key}: {e.step_failure_data.error.message.strip()}" for e in steps) or "failed"


def _ingested_version(instance: dg.DagsterInstance, spec: Spec, partition: str) -> str | None:
    """The content hash the raw partition was last materialized from, if any."""
    from mlplatform.assets import key

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key(spec, "raw"), asset_partitions=[partition]), limit=1).records
    if not records:
        return None
    return records[0].asset_materialization.tags.get("dagster/data_version")


def _ingest_succeeded(instance: dg.DagsterInstance, spec: Spec, partition: str) -> bool:
    from mlplatform.assets import key

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key(spec, "features"), asset_partitions=[partition]), limit=1).records
    return bool(records)


def ingest_and_train(spec: Spec, settings: Settings, only: list[str] | None, train: bool,
                     force: bool = False) -> Outcome:
    """Add landed files as partitions, ingest each new or changed one (a bad one fails alone), then train."""
    from mlplatform.lib.landing import content_hash

    from mlplatform import jobs
    from mlplatform.definitions import build_definitions
    from mlplatform.specs import SPECS

    defs = build_definitions(SPECS, settings)
    primary = spec == SPECS[0]
    instance = dg.DagsterInstance.get()
    landing = defs.resources["landing"]
    files = landing.files(spec)
    keys = [k for k in files if only is None or k in only]
    parts_name = f"{spec.name}_files"
    known = set(instance.get_dynamic_partitions(parts_name))
    instance.add_dynamic_partitions(parts_name, [k for k in keys if k not in known])
    outcome = Outcome()
    ingest = defs.resolve_job_def(jobs.job_name(spec, primary, "ingest"))
    for key in keys:
        if not force and _ingested_version(instance, spec, key) == content_hash(files[key]):
            outcome.partitions[key] = "unchanged" if _ingest_succeeded(instance, spec, key) else "unchanged (rejected earlier)"
            continue
        result = ingest.execute_in_process(instance=instance, partition_key=key, raise_on_error=False)
        outcome.partitions[key] = "ok" if result.success else _failures(result)
        outcome.ok &= result.success
    if train:
        result = defs.resolve_job_def(jobs.job_name(spec, primary, "training")).execute_in_process(
            instance=instance, raise_on_error=False)
        outcome.training = "ok" if result.success else _failures(result)
        outcome.ok &= result.success
    return outcome
