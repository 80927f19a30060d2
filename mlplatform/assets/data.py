"""Data layer: a landed file becomes a raw partition, then validated rows, quarantined rows and labels."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import create_model

from mlplatform.assets._shared import (
    DataFrame,
    key,
    label_metadata,
    rebuild_on_change,
    spec_config,
    table,
    table_schema,
)
from mlplatform.code_versions import CHECKOUT, Sources
from mlplatform.orchestration.freshness import unchanged
from mlplatform.partitions import file_partitions
from mlplatform.resources import LandingZone, Quarantine
from mlplatform.specs import Spec

GROUP = "data"


class ValidationConfig(dg.Config):
    """Validation thresholds as run config (each spec's class defaults them to the spec: `validation_config`)."""

    max_bad_row_share: float


def validation_config(spec: Spec) -> type[ValidationConfig]:
    """Validation thresholds as run config, defaulting to the spec."""
    return create_model(f"{spec.name.title()}ValidationConfig", __base__=ValidationConfig,
                        max_bad_row_share=(float, spec.max_bad_row_share))


def build(spec: Spec, sources: Sources = CHECKOUT) -> list[dg.AssetsDefinition]:
    """The data layer of one spec, one partition per landed file: raw → validated → labels."""
    return [raw_asset(spec, sources), validated_asset(spec, sources), labels_asset(spec, sources)]


def contract(spec: Spec) -> tuple:
    """The spec fields the dataset contract reads (part of the code versions of `validated` and `labels`)."""
    return (spec.entity, spec.timestamp, spec.label, spec.numeric, spec.categorical, spec.sensitive, spec.task,
            spec.classes, spec.positive_class, spec.target_min, spec.target_max)


def raw_asset(spec: Spec, sources: Sources) -> dg.AssetsDefinition:
    raw_key = key(spec, "raw")

    @dg.asset(key=raw_key, partitions_def=file_partitions(spec), group_name=GROUP,
              code_version=sources.version("mlplatform.lib.data.landing", config=(
                  spec.file_formats, spec.max_file_bytes, spec.max_columns, spec.max_rows)),
              kinds={"pandas", "file"},
              check_specs=[dg.AssetCheckSpec("readable", asset=raw_key, blocking=True,
                                             description="The landed file is a readable CSV or Parquet table")])
    def raw(context: dg.AssetExecutionContext, landing: LandingZone, quarantine: Quarantine) -> Iterator:
        """The landed file as read, with its content hash as data version."""
        from mlplatform.lib.data.landing import LandedFileError, Limits, content_hash, read_landed

        path = landing.path(spec, context.partition_key)
        digest = content_hash(path) if path.exists() else "missing"
        meta: dict[str, Any] = {"path": dg.MetadataValue.path(str(path)), "sha256": digest}
        try:
            frame = read_landed(path, Limits(spec.max_file_bytes, spec.max_columns, spec.max_rows))
        except LandedFileError as err:
            kept = quarantine.keep_file(spec, context.partition_key, path)
            meta["quarantined_copy"] = dg.MetadataValue.path(str(kept)) if kept else "none"
            yield dg.Output(None, data_version=dg.DataVersion(digest), metadata=meta | {"error": str(err)})
            yield dg.AssetCheckResult(check_name="readable", passed=False, description=str(err),
                                      metadata={"error": str(err), "file": str(path)})
            return
        meta |= {"dagster/row_count": len(frame), "dagster/column_schema": table_schema(frame),
                 "bytes": path.stat().st_size}
        yield dg.Output(frame, data_version=dg.DataVersion(digest), metadata=meta)
        yield dg.AssetCheckResult(check_name="readable", passed=True, metadata={"rows": len(frame)})

    return raw


def validated_asset(spec: Spec, sources: Sources) -> dg.AssetsDefinition:
    raw_key, validated_key, parts = key(spec, "raw"), key(spec, "validated"), file_partitions(spec)

    @dg.asset(key=validated_key, ins={"raw": dg.AssetIn(raw_key)}, partitions_def=parts, group_name=GROUP,
              code_version=sources.version("mlplatform.lib.data.validation", "mlplatform.lib.hashing",
                                           config=(contract(spec), spec.max_bad_row_share)),
              kinds={"pandas", "pandera"}, automation_condition=rebuild_on_change(partitioned=True),
              check_specs=[dg.AssetCheckSpec("bad_row_share", asset=validated_key, blocking=True,
                                             description="Share of rows failing the contract is within the threshold")])
    @spec_config(validation_config(spec))
    def validated(context: dg.AssetExecutionContext, config: ValidationConfig, raw: DataFrame,
                  quarantine: Quarantine) -> Iterator:
        """Rows that meet the dataset contract; the others are quarantined with the checks they failed (all of a
        rejected file's rows, so that rows in = valid + quarantined always)."""
        from mlplatform.lib.data.validation import validate_landed
        from mlplatform.lib.hashing import frame_version

        checked = validate_landed(raw, spec)
        passed = not checked.file_errors and checked.bad_share <= config.max_bad_row_share
        description = checked.summary()
        result = checked
        if not passed and not checked.file_errors:
            result = checked.rejected(f"file rejected: {checked.bad_share:.1%} of its rows failed the contract "
                                      f"(more than {config.max_bad_row_share:.1%})")
            description += f"; the file is rejected: all {checked.rows_in} rows are quarantined"
        bad = result.quarantined
        qpath = quarantine.keep_rows(spec, context.partition_key, bad) if len(bad) else None
        if qpath is None:
            quarantine.clear(spec, context.partition_key)
        counts = {"rows_in": result.rows_in, "rows_valid": len(result.valid), "rows_quarantined": len(bad)}
        yield dg.Output(result.valid, data_version=dg.DataVersion(frame_version(result.valid)),
                        metadata=counts | {"dagster/row_count": len(result.valid), "bad_row_share": checked.bad_share,
                                           "quarantine": dg.MetadataValue.path(str(qpath)) if qpath else "none"})
        yield dg.AssetCheckResult(
            check_name="bad_row_share", passed=passed, description=description,
            metadata=counts | {"bad_row_share": checked.bad_share, "threshold": config.max_bad_row_share,
                               "file_errors": "; ".join(result.file_errors) or "none",
                               "failures": table(result.failure_counts()), "sample": table(result.sample())})

    return validated


def labels_asset(spec: Spec, sources: Sources) -> dg.AssetsDefinition:
    validated_key, parts = key(spec, "validated"), file_partitions(spec)

    # Labels do not read features: the training set depends on both, and waits for their blocking checks.
    @dg.asset(key=key(spec, "labels"), ins={"validated": dg.AssetIn(validated_key)},
              partitions_def=parts, output_required=False,
              group_name=GROUP, kinds={"pandas"}, automation_condition=rebuild_on_change(partitioned=True),
              code_version=sources.version("mlplatform.lib.data.labels", "mlplatform.lib.hashing",
                                           config=contract(spec)))
    def labels(context: dg.AssetExecutionContext, validated: DataFrame) -> Iterator:
        """Label events (entity, time, label, fairness slice): the rows a training set is built for."""
        if unchanged(context):
            return
        from mlplatform.lib.data.labels import label_rows
        from mlplatform.lib.hashing import frame_version

        rows = label_rows(validated, spec)
        yield dg.Output(rows, data_version=dg.DataVersion(frame_version(rows)),
                         metadata={"dagster/row_count": len(rows), **label_metadata(rows, spec)})

    return labels
