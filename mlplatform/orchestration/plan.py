"""The plan: every asset partition that is stale or would rebuild because an upstream one does, why, and which
jobs and partitions would run (`mlplatform plan`). Reads the instance; changes nothing."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import dagster as dg

from mlplatform.jobs import ASSETS_BY_JOB, job_name
from mlplatform.orchestration.freshness import AssetGraph, materialization_of, reasons, triggers


@dataclass
class Entry:
    """One asset partition that would rebuild, and why."""

    asset: str
    partition: str | None
    reasons: list[str]
    job: str

    def as_dict(self) -> dict:
        return {"asset": self.asset, "partition": self.partition, "reasons": self.reasons, "job": self.job}


def job_of(asset_key: dg.AssetKey) -> str:
    """The job that materializes an asset (the drift of landed files is materialized by automation only)."""
    for base, names in ASSETS_BY_JOB.items():
        if asset_key.path[-1] in names:
            return job_name(asset_key.path[0], base)
    return "automation"


def plan(instance: dg.DagsterInstance, graph: AssetGraph,
         landed: Mapping[str, Iterable[str]] | None = None) -> list[Entry]:
    """Every asset partition that is stale (direct reasons) or would rebuild because an upstream one does, in
    topological order. `landed` maps a dynamic partitions definition's name to the keys of files already in the
    landing zone but not yet added (new partitions). Time-partitioned assets are planned for the partitions
    materialized before: a new day is the schedule's, not a change."""
    landed = landed or {}
    entries: dict[tuple[dg.AssetKey, str | None], Entry] = {}
    for asset_key in graph.toposorted_asset_keys:
        node = graph.get(asset_key)
        if node.is_external:
            continue
        job = job_of(asset_key)
        for partition in _planned_partitions(instance, graph, asset_key, landed):
            why = [str(r) for r in reasons(instance, graph, asset_key, partition)]
            upstream = []
            for parent in triggers(graph, asset_key):
                same = node.is_partitioned and graph.get(parent).partitions_def == node.partitions_def
                if any(k == parent and (not same or p == partition) for k, p in entries):
                    upstream.append(parent.to_user_string() + (f"[{partition}]" if same and partition else ""))
            if upstream:
                why.append(f"upstream will rebuild: {', '.join(upstream)}")
            if why:
                entries[(asset_key, partition)] = Entry(asset_key.to_user_string(), partition, why, job)
    return list(entries.values())


def _planned_partitions(instance: dg.DagsterInstance, graph: AssetGraph, asset_key: dg.AssetKey,
                        landed: Mapping[str, Iterable[str]]) -> Sequence[str | None]:
    definition = graph.get(asset_key).partitions_def
    if definition is None:
        return [None]
    if isinstance(definition, dg.TimeWindowPartitionsDefinition):
        # a time-partitioned asset's materializations all name their partition
        return sorted({cast(str, materialization_of(r).partition) for r in instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key), limit=10_000).records})
    keys = list(definition.get_partition_keys(dynamic_partitions_store=instance))
    if isinstance(definition, dg.DynamicPartitionsDefinition) and definition.name is not None:
        keys += [k for k in landed.get(definition.name, ()) if k not in keys]
    return keys


def summary(entries: Iterable[Entry]) -> list[dict]:
    """The runs the plan implies: per job, its partitions and assets."""
    runs: dict[str, dict] = {}
    for e in entries:
        run = runs.setdefault(e.job, {"job": e.job, "partitions": [], "assets": []})
        if e.partition and e.partition not in run["partitions"]:
            run["partitions"].append(e.partition)
        if e.asset not in run["assets"]:
            run["assets"].append(e.asset)
    return list(runs.values())
