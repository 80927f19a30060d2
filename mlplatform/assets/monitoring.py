"""Monitoring layer: what the served models answered, collected per day, the drift of landed data and of live
traffic against the champion's training reference, and the live performance of each served version once the
labels of its rows have landed."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import dagster as dg

from mlplatform.assets._shared import DataFrame, key, rebuild_on_change, table
from mlplatform.code_versions import CHECKOUT, Sources
from mlplatform.lib.monitoring import triggers
from mlplatform.partitions import SERVING_DAYS, file_partitions
from mlplatform.resources import Artifacts, DeploymentTarget, MlflowTracking
from mlplatform.specs import Spec

GROUP = "monitoring"
SEVERITY = {"warn": dg.AssetCheckSeverity.WARN, "error": dg.AssetCheckSeverity.ERROR}


def drift_check(spec: Spec, asset_key: dg.AssetKey) -> dg.AssetCheckSpec:
    m = spec.monitoring
    return dg.AssetCheckSpec("drift", asset=asset_key, blocking=False,
                             description=f"Share of drifted features: warn from {m.drift_warn_share:.0%}, "
                                         f"error from {m.drift_error_share:.0%}")


def judge_drift(context: dg.AssetExecutionContext, spec: Spec, kind: str, current: DataFrame, mlflow: MlflowTracking,
                artifacts: Artifacts, traffic: str = "") -> list:
    """The drift of `current` against the champion's training reference: an output and its check result."""
    import pandas as pd

    from mlplatform.lib.hashing import frame_version
    from mlplatform.lib.monitoring import drift
    from mlplatform.lib.training import tracking

    def read(reference: tracking.Reference) -> pd.DataFrame:
        snapshot = artifacts.snapshot(spec, reference.data_version)
        if not snapshot.exists():
            raise dg.Failure(f"{spec.name}: the training set snapshot of model v{reference.model_version} is "
                             f"missing: {snapshot}")
        return pd.read_parquet(snapshot)

    base = drift.baseline(tracking.training_references(mlflow.client(), spec), read,
                          context.partition_key if kind == "data" else None)
    if base.rows is None:
        note = base.absent(context.partition_key)
        return [dg.Output(pd.DataFrame(), data_version=dg.DataVersion("no-reference"), metadata={"reference": note}),
                dg.AssetCheckResult(check_name="drift", passed=True, description=note)]
    path = artifacts.drift_report(spec, kind, context.partition_key)
    outputs = None
    if kind == "live" and base.model_version is not None and len(current):  # the served outputs, too
        model = tracking.load_version(mlflow.tracking_uri, spec, base.model_version)
        name, _ = drift.prediction_column(spec)
        outputs = (drift.reference_predictions(model, base.rows, spec, spec.gates.decision_threshold), current[name])
    result = drift.detect(base.rows, current, spec, report=path, predictions=outputs)
    frame = result.frame()
    metadata: dict[str, Any] = {"drifted_share": float(result.share), "drifted_features": len(result.drifted),
                "current_rows": result.current_rows, "reference_rows": result.reference_rows,
                "reference_model": base.whose(),
                **triggers.Batch(kind, context.partition_key, result.severity if result.judged else "not judged",
                                 base.data_version, result.summary()).metadata(),
                "features": table(frame) if len(frame) else "none tested"}
    if traffic:
        metadata["traffic"] = traffic
    if result.prediction is not None:
        p = result.prediction
        metadata.update(prediction_drifted=p.drifted, prediction_drift=f"{p.column}: {p.method} {p.score:.4g} "
                                                                        f"(threshold {p.threshold:.4g})")
    if result.judged:
        metadata["report"] = dg.MetadataValue.path(str(path))
    version = f"{frame_version(frame) if len(frame) else 'empty'}-{base.data_version}"
    check = dg.AssetCheckResult(check_name="drift", passed=result.severity == "none",
                                severity=SEVERITY.get(result.severity, dg.AssetCheckSeverity.WARN),
                                description=result.summary(),
                                metadata={"drifted_share": float(result.share),
                                          "drifted": dg.MetadataValue.json(result.drifted)})
    return [dg.Output(frame, data_version=dg.DataVersion(version), metadata=metadata), check]


def build(spec: Spec, sources: Sources = CHECKOUT) -> list[dg.AssetsDefinition]:
    """What the served models answered per day, the drift of landed files and traffic, live performance."""
    return [predictions_asset(spec, sources), *drift_assets(spec, sources), live_performance_asset(spec, sources)]


def deployed_keys(spec: Spec) -> list[dg.AssetKey]:
    """The environments' assets: monitoring follows them for order and reference, not for content."""
    return [key(spec, "staging"), key(spec, "production")]


def predictions_asset(spec: Spec, sources: Sources) -> dg.AssetsDefinition:
    predictions_key = key(spec, "predictions")

    @dg.asset(key=predictions_key, deps=deployed_keys(spec), partitions_def=SERVING_DAYS, group_name=GROUP,
              code_version=sources.version("mlplatform.serving.predlog", config=spec.contract_feature_names),
              kinds={"pandas"})
    def predictions(context: dg.AssetExecutionContext, deployment: DeploymentTarget) -> dg.Output:
        """Every row the staging and production services scored on the day (UTC), with version and role."""
        from mlplatform.deploy.records import ENVIRONMENTS
        from mlplatform.lib.hashing import frame_version
        from mlplatform.serving.predlog import SMOKE, day_frame

        deployments = deployment.deployer().deployments
        folders = {env: deployments.predictions_dir(env) for env in ENVIRONMENTS}
        logged = day_frame(folders, context.partition_key, spec)
        smoke = logged["role"] == SMOKE  # the deployer's smoke tests are not traffic: not judged for drift, performance
        frame = logged[~smoke].reset_index(drop=True)
        summary = (frame.groupby(["env", "model_version", "role"]).agg(requests=("request_id", "nunique"),
                                                                       rows=("request_id", "size"),
                                                                       mean_probability=("probability", "mean"))
                   .round(4).reset_index())
        return dg.Output(frame, data_version=dg.DataVersion(frame_version(frame)), metadata={
            "dagster/row_count": len(frame), "requests": int(frame["request_id"].nunique()),
            "smoke_rows_left_out": int(smoke.sum()),
            "by_version": table(summary), "positive_rate": float(frame["label"].mean()) if len(frame) else 0.0})

    return predictions


def drift_assets(spec: Spec, sources: Sources) -> list[dg.AssetsDefinition]:
    """Landed files' and live traffic's drift, judged alike (one code version)."""
    m, deployed = spec.monitoring, deployed_keys(spec)
    drift_version = sources.version("mlplatform.lib.monitoring.drift", config=(
        spec.contract_feature_names, m.drift_warn_share, m.drift_error_share, m.min_drift_rows, spec.task))
    predictions_key, data_drift_key, live_drift_key = (key(spec, n) for n in ("predictions", "data_drift",
                                                                               "live_drift"))

    # A promotion changes the reference; it does not re-run the drift of every earlier batch by itself.
    not_on_promotion = dg.AssetSelection.assets(*deployed)

    @dg.asset(key=data_drift_key, ins={"validated": dg.AssetIn(key(spec, "validated"))}, deps=deployed[1:],
              partitions_def=file_partitions(spec), group_name=GROUP, code_version=drift_version,
              kinds={"evidently", "pandas"},
              automation_condition=rebuild_on_change(partitioned=True, not_triggered_by=not_on_promotion),
              check_specs=[drift_check(spec, data_drift_key)])
    def data_drift(context: dg.AssetExecutionContext, validated: DataFrame, mlflow: MlflowTracking,
                   artifacts: Artifacts) -> Iterator:
        """Per-feature drift of a landed file's valid rows against the champion's training set (Evidently)."""
        yield from judge_drift(context, spec, "data", validated, mlflow, artifacts)

    @dg.asset(key=live_drift_key, ins={"predictions": dg.AssetIn(predictions_key)}, deps=deployed[1:],
              partitions_def=SERVING_DAYS, group_name=GROUP, code_version=drift_version,
              kinds={"evidently", "pandas"},
              automation_condition=rebuild_on_change(partitioned=True, not_triggered_by=not_on_promotion),
              check_specs=[drift_check(spec, live_drift_key)])
    def live_drift(context: dg.AssetExecutionContext, predictions: DataFrame, mlflow: MlflowTracking,
                   artifacts: Artifacts) -> Iterator:
        """Per-feature drift of a day's production traffic (staging's, if production had none) against the
        champion's training set, and of its predictions against the champion's on that set (Evidently)."""
        production = predictions[predictions["env"] == "production"]
        staging_only = production.empty and not predictions.empty
        current, traffic = (predictions, "staging") if staging_only else (production, "production")
        yield from judge_drift(context, spec, "live", current, mlflow, artifacts, traffic)

    return [data_drift, live_drift]


def live_performance_asset(spec: Spec, sources: Sources) -> dg.AssetsDefinition:
    m, predictions_key = spec.monitoring, key(spec, "predictions")
    live_performance_key, labels_key = key(spec, "live_performance"), key(spec, "labels")

    floors = ", ".join([f"{n} ≥ {v}" for n, v in spec.gate_thresholds["floors"].items()]
                       + [f"{n} ≤ {v}" for n, v in spec.gate_thresholds["ceilings"].items()])

    @dg.asset(key=live_performance_key, group_name=GROUP, kinds={"scikitlearn", "pandas"},
              code_version=sources.version("mlplatform.lib.monitoring.live",
                                           "mlplatform.lib.evaluation.metrics:expected_calibration_error",
                                           "mlplatform.lib.evaluation.metrics:calibration_bins", config=(
                                               m.label_window_days, m.min_label_rows, spec.gate_thresholds,
                                               spec.task)),
              ins={"predictions": dg.AssetIn(predictions_key),
                   "labels": dg.AssetIn(labels_key, partition_mapping=dg.AllPartitionMapping(),
                                        metadata={"allow_missing_partitions": True})},
              partitions_def=SERVING_DAYS,
              automation_condition=rebuild_on_change(True, timedelta(days=spec.monitoring.label_lookback_days),
                                                     may_be_missing=dg.AssetSelection.assets(labels_key)),
              check_specs=[dg.AssetCheckSpec("performance_floor", asset=live_performance_key, blocking=False,
                                             description=f"Production's primary version on the day's labelled rows: "
                                                         f"{floors} (the gates' floors and ceilings)")])
    def live_performance(predictions: DataFrame, labels: DataFrame) -> Iterator:
        """Per environment and model version, the day's served rows whose labels have landed since, and the
        headline metric and calibration on them; production's primary version is judged against the gates."""
        import pandas as pd

        from mlplatform.lib.hashing import frame_version
        from mlplatform.lib.monitoring import live

        # the IO manager hands over one partition unwrapped, and None before any exists
        parts = labels.values() if isinstance(labels, dict) else [labels]
        landed = [f for f in parts if f is not None and len(f)]
        label_rows = pd.concat(landed, ignore_index=True) if landed else pd.DataFrame(
            columns=[spec.entity, spec.timestamp, spec.label])
        joined = live.labelled(predictions, label_rows, spec)
        versions = live.by_version(predictions, joined, spec)
        metadata: dict = {"served_rows": len(predictions), "labelled_rows": len(joined),
                          "with_entity": int(predictions[spec.entity].notna().sum()),
                          "by_version": table(versions.round(4), missing="no labels yet") if len(versions)
                          else "no traffic"}
        check = performance_check(spec, versions, metadata)
        yield dg.Output(versions, data_version=dg.DataVersion(frame_version(versions)), metadata=metadata)
        yield check

    return live_performance


def performance_check(spec: Spec, versions: DataFrame, metadata: dict) -> dg.AssetCheckResult:
    """Each served version's live metrics into `metadata` (read back by the sensors through `triggers.Day`), and
    production's primary version judged against the gates' floors and ceilings."""
    import pandas as pd

    from mlplatform.lib.monitoring import live

    for row in versions.itertuples():
        for name in ("labelled_rows", *live.HEADLINE):
            value = getattr(row, name)
            if pd.notna(value):
                metadata[triggers.Day.metric_key(row.env, row.model_version, name)] = float(value)
    primary = live.headline(versions)
    if primary is None:
        check = dg.AssetCheckResult(check_name="performance_floor", passed=True,
                                    description="no production traffic on this day")
    else:
        verdict = live.judge(primary, spec)
        metadata.update(triggers.Day.verdict_metadata(verdict.version, verdict.judged,
                                                      verdict.judged and not verdict.passed, verdict.summary()))
        for name in live.HEADLINE:  # the headline series, plotted over days in the UI
            if pd.notna(primary[name]):
                metadata[name] = float(primary[name])
        check = dg.AssetCheckResult(check_name="performance_floor", passed=verdict.passed,
                                    severity=dg.AssetCheckSeverity.ERROR, description=verdict.summary(),
                                    metadata={"version": verdict.version, "judged": verdict.judged,
                                              "labelled_rows": verdict.labelled_rows})
    return check
