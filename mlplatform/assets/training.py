"""Training layer: the point-in-time correct training set (models and evaluation build on it)."""

from collections.abc import Iterator

import dagster as dg

from mlplatform.assets import DataFrame, key, rebuild_on_change, table
from mlplatform.resources import FeastStore
from mlplatform.specs import Spec

GROUP = "training"


def build(spec: Spec) -> list[dg.AssetsDefinition]:
    set_key = key(spec, "training_set")
    labels_in = dg.AssetIn(key(spec, "labels"), metadata={"allow_missing_partitions": True})

    @dg.asset(key=set_key, ins={"labels": labels_in}, deps=[key(spec, "feature_registry")],
              group_name=GROUP, code_version="1", kinds={"pandas", "feast", "pandera"},
              automation_condition=rebuild_on_change(partitioned=False),
              check_specs=[dg.AssetCheckSpec("schema", asset=set_key, blocking=True,
                                             description="Every label row has every feature, with valid values")])
    def training_set(context: dg.AssetExecutionContext, labels: DataFrame, feast: FeastStore) -> Iterator:
        """Every label row joined to its features as of its own timestamp, via the versioned feature service."""
        import pandera.pandas as pa

        from mlplatform.lib.hashing import frame_version
        from mlplatform.lib.training_set import training_set as build_set
        from mlplatform.schemas import training_set_schema

        if not isinstance(labels, dict):  # the IO manager hands over a single partition unwrapped
            labels = dict(zip(context.asset_partition_keys_for_input("labels"), [labels]))
        if not labels:
            raise dg.Failure(f"{spec.name}: no partition has validated features yet; ingest a landed file first")
        frame = build_set(labels, spec, feast.store())
        try:
            frame = training_set_schema(spec).validate(frame, lazy=True)
            failures = None
        except pa.errors.SchemaErrors as err:
            failures = err.failure_cases[["column", "check", "index", "failure_case"]]
        version = frame_version(frame)
        yield dg.Output(frame, data_version=dg.DataVersion(version), metadata={
            "dagster/row_count": len(frame), "partitions": dg.MetadataValue.json(sorted(labels)),
            "feature_service": spec.feature_service_name, "data_version": version,
            "label_rate": float(frame[spec.label].mean()) if len(frame) else 0.0})
        yield dg.AssetCheckResult(
            check_name="schema", passed=failures is None,
            description="valid" if failures is None else f"{len(failures)} failing values",
            metadata={"failures": table(failures) if failures is not None else "none"})

    return [training_set]
