"""Freshness: whether an asset (partition) is stale, and why, from its materializations' code and data versions.

An asset partition is stale when it was never materialized, when its code version changed since, or when an
upstream partition it reads got a different data version since (a re-run that reproduced the same data does not
count). Policy edges are not rebuild triggers: the drift and prediction assets follow staging and production for
their reference and ordering, not for their content.

Steps of runs that automation or a sensor launched skip when they find themselves fresh (`unchanged`), so a run
requested for a whole chain materializes only the assets whose inputs really changed; a run started by a person
always rebuilds.
"""

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Protocol

import dagster as dg

DATA_VERSION, CODE_VERSION = "dagster/data_version", "dagster/code_version"
AUTOMATION_TAG, SENSOR_TAG = "dagster/from_automation_condition", "dagster/sensor_name"
# Dependencies that order an asset or pick its reference, but do not feed its content.
NOT_TRIGGERS: Mapping[str, frozenset[str]] = {
    "data_drift": frozenset({"staging", "production"}),
    "live_drift": frozenset({"staging", "production"}),
    "predictions": frozenset({"staging", "production"}),
}


class AssetNode(Protocol):
    """What freshness reads of a node of Dagster's asset graph (Dagster's class for it is private)."""

    @property
    def is_external(self) -> bool: ...
    @property
    def is_partitioned(self) -> bool: ...
    @property
    def partitions_def(self) -> dg.PartitionsDefinition | None: ...
    @property
    def parent_keys(self) -> Set[dg.AssetKey]: ...
    @property
    def code_version(self) -> str | None: ...


class AssetGraph(Protocol):
    """What freshness reads of Dagster's asset graph (`Definitions.resolve_asset_graph()`, a private class)."""

    @property
    def toposorted_asset_keys(self) -> Sequence[dg.AssetKey]: ...
    def get(self, key: dg.AssetKey) -> AssetNode: ...


def materialization_of(record: dg.EventLogRecord) -> dg.AssetMaterialization:
    """The materialization of a record read back as one (`fetch_materializations`, data version records)."""
    assert record.asset_materialization is not None
    return record.asset_materialization


def tags_of(record: dg.EventLogRecord) -> Mapping[str, str]:
    """The tags of a record's materialization (an asset's materialization carries its data and code versions)."""
    tags = materialization_of(record).tags
    assert tags is not None
    return tags


@dataclass(frozen=True)
class Stale:
    """One reason an asset partition is stale."""

    kind: str  # never materialized | new partition | code version changed | upstream data changed
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


def _version(record: dg.EventLogRecord | None) -> str | None:
    return tags_of(record).get(DATA_VERSION) if record and record.asset_materialization else None


def triggers(graph: AssetGraph, asset_key: dg.AssetKey) -> list[dg.AssetKey]:
    """The upstream assets whose new data makes `asset_key` stale (its parents minus the policy edges)."""
    ignored = NOT_TRIGGERS.get(asset_key.path[-1], frozenset())
    return sorted((p for p in graph.get(asset_key).parent_keys if p.path[-1] not in ignored),
                  key=lambda k: k.to_user_string())


def reasons(instance: dg.DagsterInstance, graph: AssetGraph, asset_key: dg.AssetKey, partition: str | None = None,
            ) -> list[Stale]:
    """Why `asset_key` (`partition`) is stale; empty when its latest materialization is still true."""
    node = graph.get(asset_key)
    latest = instance.get_latest_data_version_record(asset_key, partition_key=partition)
    if latest is None:
        if partition is not None and instance.get_latest_data_version_record(asset_key) is not None:
            return [Stale("new partition", partition)]
        return [Stale("never materialized")]
    recorded = tags_of(latest).get(CODE_VERSION)
    out = []
    if node.code_version and recorded != node.code_version:
        out.append(Stale("code version changed", f"{recorded} → {node.code_version}"))
    for parent in triggers(graph, asset_key):
        same_partition = node.is_partitioned and graph.get(parent).partitions_def == node.partitions_def
        changed = _changed_partitions(instance, graph, parent, partition if same_partition else None,
                                      latest.storage_id)
        out += [Stale("upstream data changed", f"{parent.to_user_string()}{f'[{p}]' if p else ''}")
                for p in changed]
    return out


def _changed_partitions(instance: dg.DagsterInstance, graph: AssetGraph, parent: dg.AssetKey, partition: str | None,
                        since: int) -> list[str | None]:
    """The partitions of `parent` (just `partition` when both share their partitions; otherwise every partition)
    materialized after storage id `since` with a different data version."""
    partitioned = graph.get(parent).is_partitioned
    records = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=parent, asset_partitions=[partition] if partition else None, after_storage_id=since),
        limit=10_000).records
    newest: dict[str | None, dg.EventLogRecord] = {}
    for record in records:  # newest first
        newest.setdefault(materialization_of(record).partition if partitioned else None, record)
    changed = []
    for p, record in sorted(newest.items(), key=lambda item: item[0] or ""):
        before = instance.get_latest_data_version_record(parent, partition_key=p, before_cursor=since + 1)
        if _version(before) != _version(record):
            changed.append(p)
    return changed


def unchanged(context: dg.AssetExecutionContext) -> bool:
    """In a run automation or a sensor launched: whether this asset (partition) is already fresh, so re-running it
    would reproduce what it has. A run a person started always rebuilds (its config may differ from the last's)."""
    if AUTOMATION_TAG not in context.run.tags and SENSOR_TAG not in context.run.tags:
        return False
    partitioned = context.has_partition_key and context.assets_def.partitions_def is not None
    partition = context.partition_key if partitioned else None
    fresh = not reasons(context.instance, context.job_def.asset_layer.asset_graph, context.asset_key, partition)
    if fresh:
        context.log.info(f"{context.asset_key.to_user_string()}{f' [{partition}]' if partition else ''} is fresh "
                         "(same code version, inputs with the same data versions): not rebuilt")
    return fresh


UNCHANGED, REJECTED = "unchanged", "unchanged (rejected earlier: fix or remove the file)"
_FINISHED_BADLY = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def _latest(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str) -> dg.EventLogRecord | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1).records
    return records[0] if records else None


def ingested(instance: dg.DagsterInstance, pipeline: str, partition: str, digest: str,
             contract_version: str | None = None) -> str | None:
    """What became of this exact file content in its partition, whoever ingested it (`mlplatform ingest`, the
    landing sensor, a person in the UI): the instance is the one record of it. `UNCHANGED` when the run that read
    it succeeded (or still runs), `REJECTED` when that run failed its contract check under the same contract
    (`contract_version`: the code version of `validated` now); None when it is to be ingested: never read, read
    with other content, the contract changed since, or the run failed for another reason (killed, a later step)."""
    raw = _latest(instance, dg.AssetKey([pipeline, "raw"]), partition)
    if raw is None or tags_of(raw).get(DATA_VERSION) != digest:
        return None
    run = instance.get_run_by_id(raw.run_id)
    if run is None:
        return None
    if run.status not in _FINISHED_BADLY:
        return UNCHANGED
    validated = dg.AssetKey([pipeline, "validated"])
    checks = [e.asset_check_evaluation for e in instance.all_logs(
        raw.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
    failed = any(c is not None and c.asset_key == validated and c.check_name == "bad_row_share" and not c.passed
                 for c in checks)
    record = _latest(instance, validated, partition)
    same_contract = contract_version is None or (record is not None and record.run_id == raw.run_id
                                                 and tags_of(record).get(CODE_VERSION) == contract_version)
    return REJECTED if failed and same_contract else None
