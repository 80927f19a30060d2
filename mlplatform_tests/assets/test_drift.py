"""Drift: per-feature tests with Evidently, the severity policy, and the drift assets judged against the training
reference of the registered model."""

import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlplatform.lib.data.demo import credit_day
from mlplatform.lib.monitoring import drift
from mlplatform.specs import Monitoring
from mlplatform_tests.datasets import diabetes, wine
from mlplatform_tests.pipelines import CREDIT

pytestmark = pytest.mark.usefixtures("same_utc_day")  # logs filed by UTC day, read back as today

REFERENCE = pd.concat([credit_day(d, 400) for d in range(4)], ignore_index=True)


def test_a_shifted_batch_drifts_in_the_shifted_features_only_and_gets_an_html_report(tmp_path):
    report = tmp_path / "report.html"
    shifted = drift.detect(REFERENCE, credit_day(5, 400, drifted=True), CREDIT, report=report)
    # the demo shift moves income, utilization and late payments; nothing else
    assert shifted.drifted == ["income", "credit_utilization", "num_late_payments"]
    assert shifted.share == pytest.approx(0.3) and shifted.severity == "error"
    assert {c.method for c in shifted.columns} == {"ks", "chisquare"}  # 400 rows: p-value tests
    html = report.read_text()
    assert "<html" in html and "credit_utilization" in html and len(html) > 100_000  # plots included
    same = drift.detect(REFERENCE, credit_day(5, 400), CREDIT)
    assert same.severity in ("none", "warn") and len(same.drifted) <= 1, same.summary()


def test_a_large_batch_is_judged_by_distances_and_a_tiny_one_not_at_all():
    large = drift.detect(REFERENCE, credit_day(5, 1500, drifted=True), CREDIT)
    assert {c.method for c in large.columns} == {"wasserstein", "jensenshannon"}
    assert large.drifted == ["income", "credit_utilization", "num_late_payments"]
    tiny = drift.detect(REFERENCE, credit_day(5, 10, drifted=True), CREDIT)
    assert not tiny.judged and tiny.severity == "none"
    assert tiny.summary() == "not judged: 10 rows, fewer than the minimum sample"


def test_severity_follows_the_drifted_share():
    policy = Monitoring(drift_warn_share=0.2, drift_error_share=0.3)
    assert [drift.severity(s, policy) for s in (0.0, 0.1, 0.2, 0.29, 0.3, 1.0)] == [
        "none", "none", "warn", "warn", "error", "error"]


def test_a_batch_without_a_monitored_column_is_refused_by_name():
    with pytest.raises(ValueError, match=r"the current rows lack the monitored columns \['income'\]"):
        drift.detect(REFERENCE, credit_day(5, 100).drop(columns=["income"]), CREDIT)


@pytest.mark.parametrize("make", [wine, diabetes])
def test_predictions_drift_when_the_model_scores_another_population_and_not_on_a_like_one(make):
    from mlplatform.lib.features.featurize import featurize
    from mlplatform.lib.training.train import TrainParams, fit

    data = make()
    spec = data.spec
    frame = featurize(data.frame, spec).assign(**{spec.label: data.frame[spec.label].to_numpy()})
    pipeline, _, _ = fit(frame, spec, TrainParams(spec.estimator_name, 1.0, 300, 3, 2))
    reference = drift.reference_predictions(pipeline, frame, spec, 0.5)  # the model on its training population
    rest = frame.sample(frac=0.6, random_state=0)  # a day drawn from the same population
    like = drift.reference_predictions(pipeline, rest, spec, 0.5)
    assert reference.name == drift.prediction_column(spec)[0]
    stable = drift.prediction_drift(reference, like, spec)
    assert stable is not None and not stable.drifted and stable.method in ("ks", "chisquare")
    one_end = rest[rest[spec.label] == spec.classes[0]] if spec.task == "multiclass" else rest[
        rest[spec.label] > rest[spec.label].median()]
    shifted = drift.prediction_drift(reference, drift.reference_predictions(pipeline, one_end, spec, 0.5), spec)
    assert shifted is not None and shifted.drifted
    result = drift.detect(frame, rest, spec, predictions=(reference, like.iloc[:5]))  # too few served rows
    assert result.prediction is None and "predictions" not in result.summary()


def _drift_of(platform, partition: str):
    validated = platform.defs.resolve_assets_def(dg.AssetKey(["credit", "validated"])).to_source_assets()
    data_drift = platform.defs.resolve_assets_def(dg.AssetKey(["credit", "data_drift"]))
    result = dg.materialize([data_drift, *validated], instance=platform.instance, partition_key=partition)
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    (event,) = result.get_asset_materialization_events()
    return check, {k: v.value for k, v in event.materialization.metadata.items()}


def test_each_landed_file_is_judged_against_the_models_training_set_with_severity_by_drifted_share(
        tracked_platform):
    platform = tracked_platform
    for d in range(4):
        platform.land(f"2026-01-0{d + 1}.csv", day=d, rows=400)
        assert platform.ingest(f"2026-01-0{d + 1}").success
    check, _ = _drift_of(platform, "2026-01-04")
    assert check.passed and check.description == "no registered model yet: nothing to compare against"
    assert platform.train().success
    check, _ = _drift_of(platform, "2026-01-04")  # a batch is never judged against a model trained on it
    assert check.passed and check.description == ("every registered model (v1) was trained on 2026-01-04: nothing "
                                                   "independent to compare against")
    platform.land("2026-01-05.csv", credit_day(4, 400, drifted=True))
    assert platform.ingest("2026-01-05").success
    drifted = ("3 of 10 features drifted (30%, severity error): income, credit_utilization, num_late_payments")
    check, metadata = _drift_of(platform, "2026-01-05")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR and check.description == drifted
    assert metadata["reference_model"] == "v1 (newest, none promoted)"
    assert metadata["current_rows"] == 400 and metadata["drifted_share"] == pytest.approx(0.3)
    assert metadata["report"].endswith("drift/credit/data/2026-01-05.html")
    assert "num_late_payments" in Path(metadata["report"]).read_text()
    # retrained on the batch before its drift was judged (the daemon may run them in either order): still v1
    assert platform.train().success
    check, again = _drift_of(platform, "2026-01-05")
    assert check.description == drifted and again["reference_model"] == "v1 (v2 was trained on this batch)"
    # a day of production traffic from the shifted population, answered by v1 and logged by the service
    from mlplatform.serving.predlog import PredictionLog

    log = PredictionLog(platform.settings.deployments_dir / "production" / "predictions", "credit_model", "1")
    rows = credit_day(6, 200, drifted=True)[CREDIT.contract_feature_names].to_dict("records")
    for start in range(0, len(rows), 20):
        log.append(f"{start:032d}", rows[start:start + 20], {"probabilities": [0.5] * 20, "labels": [1] * 20},
                   role="primary")
    day = time.strftime("%Y-%m-%d", time.gmtime())
    keys = [dg.AssetKey(["credit", "predictions"]), dg.AssetKey(["credit", "live_drift"])]
    result = dg.materialize([platform.defs.resolve_assets_def(k) for k in keys], instance=platform.instance,
                            partition_key=day)
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "income, credit_utilization, num_late_payments" in check.description
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == keys[1]]
    assert event.materialization.metadata["traffic"].value == "production"
    assert event.materialization.metadata["current_rows"].value == 200
    # every answer was 0.5: nothing like v1's probabilities on its training rows
    assert event.materialization.metadata["prediction_drifted"].value is True
    assert "; predictions (prediction_probability) drifted (ks " in check.description
