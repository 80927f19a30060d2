"""Training layer: the point-in-time correct training set and the trained, registered model."""

import json
from collections.abc import Iterator

import dagster as dg
from pydantic import create_model

from mlplatform.assets._shared import DataFrame, key, label_metadata, rebuild_on_change, spec_config, table
from mlplatform.code_versions import CHECKOUT, Sources
from mlplatform.orchestration.freshness import unchanged
from mlplatform.resources import Artifacts, FeastStore, MlflowTracking
from mlplatform.specs import Spec

GROUP = "training"


class TrainingConfig(dg.Config):
    """Hyper-parameters, seed and holdout as run config (each spec's class defaults them: `training_config`)."""

    estimator: str
    regularization_c: float
    max_iter: int
    seed: int
    holdout_days: int
    estimator_params: str = "{}"  # JSON object: the estimator's keyword arguments


def training_config(spec: Spec) -> type[TrainingConfig]:
    """Hyper-parameters, seed and holdout as run config, defaulting to the spec."""
    return create_model(f"{spec.name.title()}TrainingConfig", __base__=TrainingConfig,
                        estimator=(str, spec.estimator_name), regularization_c=(float, spec.regularization_c),
                        max_iter=(int, spec.max_iter), seed=(int, spec.seed), holdout_days=(int, spec.holdout_days),
                        estimator_params=(str, json.dumps(dict(spec.estimator_params), sort_keys=True)))


def build(spec: Spec, retraining: str = "on_new_data", sources: Sources = CHECKOUT) -> list[dg.AssetsDefinition]:
    """`retraining="on_trigger"` leaves the training set without an automation condition: only the retrain sensor
    (persistent drift, live performance below its floor) or a person starts the training chain."""
    return [training_set_asset(spec, retraining, sources), model_asset(spec, sources)]


def training_set_asset(spec: Spec, retraining: str, sources: Sources) -> dg.AssetsDefinition:
    set_key = key(spec, "training_set")
    labels_in = dg.AssetIn(key(spec, "labels"), metadata={"allow_missing_partitions": True})

    # Features are read through Feast, not loaded as an input: a dependency, so new feature values rebuild the set.
    @dg.asset(key=set_key, ins={"labels": labels_in}, deps=[key(spec, "feature_registry"), key(spec, "features")],
              group_name=GROUP, kinds={"pandas", "feast", "pandera"},
              code_version=sources.version("mlplatform.lib.features.training_set", "mlplatform.lib.hashing",
                                           config=(spec.feature_service_name, spec.feature_names)),
              automation_condition=rebuild_on_change(partitioned=False) if retraining == "on_new_data" else None,
              output_required=False, check_specs=[dg.AssetCheckSpec("schema", asset=set_key, blocking=True,
                                             description="Every label row has every feature, with valid values")])
    def training_set(context: dg.AssetExecutionContext, labels: DataFrame, feast: FeastStore,
                     artifacts: Artifacts) -> Iterator:
        """Every label row joined to its features as of its own timestamp, via the versioned feature service."""
        if unchanged(context):
            return
        import pandera.pandas as pa

        from mlplatform.lib.features.training_set import schema_failures, without_repeats
        from mlplatform.lib.features.training_set import training_set as build_set
        from mlplatform.lib.hashing import frame_version
        from mlplatform.schemas import training_set_schema

        if not isinstance(labels, dict):  # the IO manager hands over a single partition unwrapped
            keys = context.asset_partition_keys_for_input("labels")  # none at all before any partition exists
            labels = dict(zip(keys, [labels], strict=False))
        labels = {k: v for k, v in labels.items() if v is not None}  # partitions that never passed their gates
        if not labels:
            raise dg.Failure(f"{spec.name}: no partition has validated features yet; ingest a landed file first")
        labels, repeated = without_repeats(labels, spec)
        for partition, sentence in repeated.items():
            context.log.warning(f"{spec.name} partition {partition}: {sentence}")
        frame = build_set(labels, spec, feast.store())
        try:
            frame = training_set_schema(spec).validate(frame, lazy=True)
            failures = None
        except pa.errors.SchemaErrors as err:
            failures = err.failure_cases[["column", "check", "index", "failure_case"]]
        version = frame_version(frame)
        snapshot = artifacts.keep_snapshot(spec, version, frame) if failures is None else None
        yield dg.Output(frame, data_version=dg.DataVersion(version), metadata={
            "snapshot": dg.MetadataValue.path(str(snapshot)) if snapshot else "not kept (failed its schema check)",
            "dagster/row_count": len(frame), "partitions": dg.MetadataValue.json(sorted(labels)),
            "repeated_keys": dg.MetadataValue.json(repeated) if repeated else "none",
            "feature_service": spec.feature_service_name, "data_version": version,
            **label_metadata(frame, spec)})
        yield dg.AssetCheckResult(
            check_name="schema", passed=failures is None,
            description="valid" if failures is None else schema_failures(failures, frame),
            metadata={"failures": table(failures) if failures is not None else "none"})

    return training_set


def model_asset(spec: Spec, sources: Sources) -> dg.AssetsDefinition:
    set_key, model_key = key(spec, "training_set"), key(spec, "model")

    @dg.asset(key=model_key, ins={"training_set": dg.AssetIn(set_key)}, group_name=GROUP,
              code_version=sources.version("mlplatform.lib.training.train", "mlplatform.lib.training.estimators",
                                           *([spec.estimator] if ":" in spec.estimator else []),  # a factory's source
                                           config=(spec.task, spec.classes, spec.estimator_name, spec.estimator_params,
                                                   spec.regularization_c, spec.max_iter, spec.seed,
                                                   spec.holdout_days)),
              kinds={"scikitlearn", "mlflow"}, automation_condition=rebuild_on_change(partitioned=False),
              retry_policy=dg.RetryPolicy(max_retries=2, delay=5), output_required=False)
    @spec_config(training_config(spec))
    def model(context: dg.AssetExecutionContext, config: TrainingConfig, training_set: DataFrame,
              mlflow: MlflowTracking) -> Iterator:
        """A fitted scikit-learn Pipeline, tracked in MLflow and registered as the `challenger` version."""
        if unchanged(context):
            return
        from mlplatform.lib.hashing import frame_version
        from mlplatform.lib.training import tracking, train

        try:
            given = config.model_dump()
            params = train.TrainParams(**{**given, "estimator_params": json.loads(given["estimator_params"])})
            pipeline, train_rows, holdout = train.fit(training_set, spec, params)
            metric, value = train.headline_metric(pipeline, holdout, spec)
        except ValueError as err:  # bad data or config (an EstimatorError names the path): retrying cannot help
            raise dg.Failure(str(err), allow_retries=False) from err
        set_version = frame_version(training_set)  # the content trained on, as the training set versioned it
        partitions = sorted(training_set["_partition"].unique())
        tags = {"dagster.run_id": context.run.run_id, "dagster.asset_key": model_key.to_user_string(),
                "dagster.code_version": context.assets_def.code_versions_by_key[model_key] or "",
                "training_set.data_version": set_version,
                "training_set.partitions": f"{partitions[0]}..{partitions[-1]} ({len(partitions)})",
                "git.commit": tracking.git_commit(), "lock.sha256": tracking.lock_hash(),
                "feature_service": spec.feature_service_name}
        metrics = {f"holdout_{metric}": value,
                   "train_rows": train_rows, "holdout_rows": len(holdout)}
        tracked = tracking.log_and_register(mlflow.client(), mlflow.tracking_uri, mlflow.artifact_root, spec, pipeline,
                                            holdout[spec.feature_names], params.__dict__, metrics, tags)
        trained = train.TrainedModel(pipeline, params, tracked, set_version, partitions, train_rows, len(holdout),
                                     tags, spec)
        yield dg.Output(trained, data_version=dg.DataVersion(train.behaviour_version(pipeline, holdout, spec)),
                         metadata={**metrics, "mlflow_run_id": tracked.run_id, "model_uri": tracked.model_uri,
                                   "registered_model": f"{tracked.name} v{tracked.version} @challenger",
                                   "git_commit": tags["git.commit"], "seed": params.seed})

    return model
