"""The trained model: a seeded Pipeline, tracked and registered in a real MLflow sqlite store."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlplatform.lib.data.demo import credit_day
from mlplatform.lib.features.featurize import featurize
from mlplatform.lib.training.train import TrainParams, fit, headline_metric, holdout_mask, holdout_method
from mlplatform_tests.pipelines import CREDIT

PARAMS = TrainParams("logistic_regression", 1.0, 1000, 42, 2)


def training_frame(days: int = 5, rows: int = 800) -> pd.DataFrame:
    raw = pd.concat([credit_day(d, rows) for d in range(days)], ignore_index=True)
    return featurize(raw, CREDIT).assign(**{CREDIT.label: raw[CREDIT.label]})


def test_holdout_is_the_latest_days_of_label_time():
    frame = training_frame()
    held = holdout_mask(frame, CREDIT, holdout_days=2)
    train, holdout = frame[~held], frame[held]
    assert train[CREDIT.timestamp].max() < holdout[CREDIT.timestamp].min()
    assert sorted(holdout[CREDIT.timestamp].dt.day.unique()) == [4, 5]
    assert holdout_method(frame, CREDIT, 2) == "by time: the latest 2 of 5 days of label time"


def test_too_few_days_for_a_holdout_by_time_hold_out_a_seeded_fraction_and_say_so():
    frame = training_frame(days=2, rows=100)
    held = holdout_mask(frame, CREDIT, holdout_days=2, seed=3)
    assert held.sum() == 50  # a quarter of 200 rows, from both days
    assert (held == holdout_mask(frame, CREDIT, holdout_days=2, seed=3)).all()
    assert not (held == holdout_mask(frame, CREDIT, holdout_days=2, seed=4)).all()
    assert holdout_method(frame, CREDIT, 2).startswith("a seeded random 25% of rows (2 day(s) of label time")


@pytest.mark.parametrize("estimator", ["logistic_regression", "gradient_boosting"])
def test_refitting_with_the_same_data_and_seed_gives_identical_predictions(estimator):
    frame, params = training_frame(), TrainParams(estimator, 1.0, 200, 7, 2)
    (a, _, holdout), (b, _, _) = fit(frame, CREDIT, params), fit(frame, CREDIT, params)
    x = holdout[CREDIT.feature_names]
    assert np.max(np.abs(a.predict_proba(x) - b.predict_proba(x))) == 0.0


def test_the_model_learns_real_signal_and_the_constant_baseline_does_not():
    frame = training_frame()
    model, _, holdout = fit(frame, CREDIT, PARAMS)
    baseline, _, _ = fit(frame, CREDIT, TrainParams("constant", 1.0, 1, 42, 2))
    assert headline_metric(model, holdout, CREDIT)[1] > 0.65
    assert headline_metric(baseline, holdout, CREDIT) == ("roc_auc", 0.5)


def test_unknown_estimator_is_named():
    with pytest.raises(ValueError, match=r"estimator 'svm': not a built-in \(logistic_regression, ridge"):
        fit(training_frame(), CREDIT, TrainParams("svm", 1.0, 1, 42, 2))


def ingest_days(platform, days: int = 4) -> None:  # noqa: ANN001
    for d in range(days):
        platform.land(f"2026-01-0{d + 1}.csv", day=d, rows=400)
        assert platform.ingest(f"2026-01-0{d + 1}").success


def model_metadata(result) -> dict:  # noqa: ANN001
    (event,) = [m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "model"]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_training_job_tracks_one_mlflow_run_and_registers_a_challenger(tracked_platform):
    from mlflow.tracking import MlflowClient

    platform = tracked_platform
    ingest_days(platform)
    result = platform.train()
    assert result.success
    meta = model_metadata(result)
    client = MlflowClient(platform.settings.mlflow_tracking_uri)
    run = client.get_run(meta["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["dagster.run_id"] == result.run_id and tags["dagster.asset_key"] == "credit/model"
    model_key = dg.AssetKey(["credit", "model"])
    assert tags["dagster.code_version"] == platform.defs.resolve_assets_def(model_key).code_versions_by_key[model_key]
    assert tags["training_set.partitions"] == "2026-01-01..2026-01-04 (4)"
    record = platform.instance.get_latest_data_version_record(dg.AssetKey(["credit", "training_set"]))
    assert tags["training_set.data_version"] == record.asset_materialization.tags["dagster/data_version"]
    assert len(tags["git.commit"]) >= 40 and len(tags["lock.sha256"]) == 16
    assert run.data.params["seed"] == "42" and run.data.params["estimator"] == "logistic_regression"
    assert (run.data.metrics["holdout_roc_auc"] == pytest.approx(meta["holdout_roc_auc"])
            and meta["holdout_roc_auc"] > 0.6)
    version = client.get_model_version_by_alias("credit_model", "challenger")
    assert str(version.version) == "1" and version.tags["dagster.run_id"] == result.run_id
    assert not (platform.settings.home.parent / "mlruns").exists()


def test_the_registered_challenger_predicts_like_the_trained_pipeline(tracked_platform):
    import mlflow

    platform = tracked_platform
    ingest_days(platform)
    result = platform.train()
    pipeline = result.output_for_node("credit__model")
    frame = result.output_for_node("credit__training_set").tail(50)
    mlflow.set_tracking_uri(platform.settings.mlflow_tracking_uri)
    loaded = mlflow.sklearn.load_model("models:/credit_model@challenger")
    x = frame[CREDIT.feature_names]
    assert np.array_equal(loaded.predict_proba(x), pipeline.pipeline.predict_proba(x))


def test_retraining_unchanged_inputs_reproduces_the_model_exactly(tracked_platform):
    from mlflow.tracking import MlflowClient

    platform = tracked_platform
    ingest_days(platform)
    first, second = platform.train(), platform.train()
    a, b = first.output_for_node("credit__model"), second.output_for_node("credit__model")
    x = first.output_for_node("credit__training_set")[CREDIT.feature_names]
    assert np.max(np.abs(a.output(x) - b.output(x))) == 0.0
    records = platform.instance.fetch_materializations(dg.AssetKey(["credit", "model"]), limit=10).records
    versions = [r.asset_materialization.tags["dagster/data_version"] for r in records]
    assert len(versions) == 2 and versions[0] == versions[1]
    assert str(MlflowClient(platform.settings.mlflow_tracking_uri).get_model_version_by_alias(
        "credit_model", "challenger").version) == "2"


def test_reproduce_re_creates_a_registered_version_with_identical_predictions(tracked_platform):
    from mlplatform.lib.training.reproduce import ReproductionError, reproduce

    platform = tracked_platform
    ingest_days(platform, days=5)
    assert platform.train().success
    artifacts, mlflow_res = platform.defs.resources["artifacts"], platform.defs.resources["mlflow"]

    def snapshot(version: str):  # noqa: ANN202
        return artifacts.snapshot(CREDIT, version)

    outcome = reproduce(mlflow_res.client(), platform.settings.mlflow_tracking_uri, CREDIT, "1", snapshot)
    assert outcome.identical and outcome.max_abs_diff == 0.0 and outcome.holdout_rows == 800
    assert "predictions identical: max |Δ| = 0 over 800 holdout rows" in outcome.report()
    with pytest.raises(ReproductionError, match="credit_model has no version '7'"):
        reproduce(mlflow_res.client(), platform.settings.mlflow_tracking_uri, CREDIT, "7", snapshot)
    path = snapshot(outcome.data_version)
    frame = pd.read_parquet(path)
    frame.loc[0, CREDIT.label] = 1 - frame.loc[0, CREDIT.label]
    frame.to_parquet(path, index=False)
    with pytest.raises(ReproductionError, match=f"no longer hashes to {outcome.data_version}: it was changed"):
        reproduce(mlflow_res.client(), platform.settings.mlflow_tracking_uri, CREDIT, "1", snapshot)
