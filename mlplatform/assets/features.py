"""Feature layer: Feast definitions applied as a registry asset, and per-partition features offline and online."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from mlplatform.assets._shared import FEAST_REGISTRY_POOL, DataFrame, key, rebuild_on_change, table
from mlplatform.code_versions import CHECKOUT, Sources
from mlplatform.lib.features.feast_repo import definitions_version
from mlplatform.partitions import file_partitions
from mlplatform.resources import FeastStore
from mlplatform.specs import Spec

GROUP = "features"


def build(spec: Spec, sources: Sources = CHECKOUT) -> list[dg.AssetsDefinition]:
    """The spec's Feast definitions (applied when they change) and its features per landed partition."""
    return [feature_registry_asset(spec), features_asset(spec, sources)]


def feature_registry_asset(spec: Spec) -> dg.AssetsDefinition:
    registry_key, version = key(spec, "feature_registry"), definitions_version(spec)

    @dg.asset(key=registry_key, group_name=GROUP, code_version=version, kinds={"feast"}, pool=FEAST_REGISTRY_POOL,
              automation_condition=dg.AutomationCondition.on_missing() | dg.AutomationCondition.code_version_changed())
    def feature_registry(context: dg.AssetExecutionContext, feast: FeastStore) -> dg.MaterializeResult:
        """The spec's Feast entity, source, feature view and versioned feature service, applied to the registry."""
        marker = Path(feast.feast_dir) / f"applied-{spec.name}.txt"
        registry = Path(feast.feast_dir) / "registry.db"
        if marker.exists() and marker.read_text() == version and registry.exists():
            context.log.info(f"Feast definitions of {spec.name} unchanged ({version}); not re-applied")
            applied = "unchanged"
        else:
            applied = ", ".join(feast.apply(spec))
            marker.write_text(version)
        return dg.MaterializeResult(data_version=dg.DataVersion(version),
                                    metadata={"definitions_version": version, "applied": applied,
                                              "feature_service": spec.feature_service_name,
                                              "registry": dg.MetadataValue.path(str(registry))})

    return feature_registry


def features_asset(spec: Spec, sources: Sources) -> dg.AssetsDefinition:
    parts, registry_key, features_key = file_partitions(spec), key(spec, "feature_registry"), key(spec, "features")

    @dg.asset(key=features_key, ins={"validated": dg.AssetIn(key(spec, "validated"))}, deps=[registry_key],
              partitions_def=parts, group_name=GROUP, kinds={"pandas", "feast"},
              code_version=sources.version("mlplatform.lib.features.featurize", "mlplatform.lib.features.online",
                                           "mlplatform.lib.hashing",
                                           *([spec.features_function] if spec.features_function else []),
                                           config=(spec.entity, spec.derived, spec.function_features)),
              automation_condition=rebuild_on_change(partitioned=True),
              check_specs=[dg.AssetCheckSpec("online_offline_parity", asset=features_key, blocking=True,
                                             description="Online values equal offline values as of the latest time")])
    def features(context: dg.AssetExecutionContext, validated: DataFrame, feast: FeastStore) -> Iterator:
        """Engineered features of a partition: written as the Feast offline source and pushed online."""
        import pandas as pd

        from mlplatform.lib.features import online
        from mlplatform.lib.features.featurize import featurize
        from mlplatform.lib.hashing import frame_version

        frame = featurize(validated, spec)
        folder = feast.offline_dir(spec)
        path = online.write_offline(frame, folder, context.partition_key)
        rows = online.latest_rows(frame, spec, folder, context.partition_key)
        store = feast.store()
        written = online.write_online(store, spec, rows)
        sample = rows[spec.entity].sample(min(spec.parity_sample_size, len(rows)), random_state=0).tolist()
        # As of the later of now and the partition's last event, so future-dated rows are compared too.
        as_of = max(pd.Timestamp.now(tz="UTC"), frame[spec.timestamp].max()) + pd.Timedelta(seconds=1)
        mismatches = online.parity_mismatches(store, spec, sample, as_of)
        yield dg.MaterializeResult(
            data_version=dg.DataVersion(frame_version(frame)),
            metadata={"dagster/row_count": len(frame), "offline_file": dg.MetadataValue.path(str(path)),
                      "online_rows_written": written, "feature_service": spec.feature_service_name,
                      "window_start": str(frame[spec.timestamp].min()), "window_end": str(frame[spec.timestamp].max())})
        yield dg.AssetCheckResult(
            check_name="online_offline_parity", passed=mismatches.empty,
            description=f"{len(mismatches)} differing values among {len(sample)} sampled entities",
            metadata={"entities_sampled": len(sample), "mismatches": len(mismatches), "sample": table(mismatches)})

    return features
