"""Live performance: logged production answers joined to the labels that land later, per model version."""

import time

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlplatform.lib.monitoring import live
from mlplatform_tests.conftest import applications, serve
from mlplatform_tests.pipelines import CREDIT

pytestmark = pytest.mark.usefixtures("same_utc_day")  # logs filed by UTC day, read back as today

KEYS = [dg.AssetKey(["credit", "predictions"]), dg.AssetKey(["credit", "live_performance"])]


def materialize(platform) -> tuple[dg.AssetCheckEvaluation, dict]:  # noqa: ANN001
    day = time.strftime("%Y-%m-%d", time.gmtime())
    labels = platform.defs.resolve_assets_def(dg.AssetKey(["credit", "labels"])).to_source_assets()
    result = dg.materialize([*(platform.defs.resolve_assets_def(k) for k in KEYS), *labels],
                            instance=platform.instance, partition_key=day)
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == KEYS[1]]
    return check, {k: v.value for k, v in event.materialization.metadata.items()}


def test_served_rows_are_scored_per_version_once_their_labels_land_and_judged_against_the_floors(platform):
    today = applications(600, seed=3)
    serve(platform.settings, today.iloc[:500], "1", "primary")
    serve(platform.settings, today.iloc[500:], "2", "candidate", invert=True)  # a canary that ranks backwards
    check, metadata = materialize(platform)
    assert check.passed and check.description == "v1: 0 labelled rows, fewer than the minimum to judge"
    assert metadata["served_rows"] == 600 and metadata["labelled_rows"] == 0 and metadata["with_entity"] == 600
    cells = [value for record in metadata["by_version"].records for value in record.data.values()]
    assert "no labels yet" in cells and not any(c in ("nan", "None", "<NA>") for c in cells)  # what the UI shows
    first = dg.evaluate_automation_conditions(defs=platform.defs, instance=platform.instance)
    assert first.get_num_requested(KEYS[1]) == 0

    # the outcomes of today's applications land in a later file: automation re-scores today
    platform.land("outcomes-1.csv", today.drop(columns="score"))
    assert platform.ingest("outcomes-1").success
    after = dg.evaluate_automation_conditions(defs=platform.defs, instance=platform.instance, cursor=first.cursor)
    assert after.get_requested_partitions(KEYS[1]) == {time.strftime("%Y-%m-%d", time.gmtime())}
    check, metadata = materialize(platform)
    assert metadata["labelled_rows"] == 600 and metadata["production_version"] == "1"
    assert metadata["production/v1/labelled_rows"] == 500 and metadata["production/v2/labelled_rows"] == 100
    assert 0.7 < metadata["roc_auc"] == metadata["production/v1/roc_auc"]
    assert metadata["production/v2/roc_auc"] < 0.35
    assert metadata["expected_calibration_error"] < 0.08 and metadata["brier"] < 0.2
    assert check.passed and check.description == "v1 clears its floors on 500 labelled rows"

    # the canary takes over most of the traffic: production's primary version is now below its floor
    serve(platform.settings, applications(600, seed=4).assign(customer_id=lambda f: f["customer_id"] + 10_000), "2",
          "primary", invert=True)
    check, metadata = materialize(platform)
    assert metadata["production_version"] == "2" and metadata["labelled_rows"] == 600  # new rows: no labels yet
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.description.startswith("v2 below its floor on 100 labelled rows: roc_auc 0.")


def test_a_label_is_the_entitys_latest_at_serving_time_within_the_window():
    at = pd.Timestamp("2026-03-10 12:00", tz="UTC")
    served = pd.DataFrame({"env": "production", "model_version": "1", "customer_id": [1, 2, 3, None],
                           "at": [at] * 4, "probability": [0.9, 0.2, 0.5, 0.5]})
    labels = pd.DataFrame({"customer_id": [1, 1, 2, 3], "default": [0, 1, 0, 1],
                           "event_timestamp": [at - pd.Timedelta(days=3), at - pd.Timedelta(hours=1),
                                               at + pd.Timedelta(hours=1),  # after serving: a later application
                                               at - pd.Timedelta(days=CREDIT.monitoring.label_window_days + 1)]})
    joined = live.labelled(served, labels, CREDIT)
    assert joined[["customer_id", "outcome"]].values.tolist() == [[1, 1]]
    table = live.by_version(served, joined)
    assert table.loc[0, "served_rows"] == 4 and table.loc[0, "labelled_rows"] == 1
    assert np.isnan(table.loc[0, "roc_auc"]) and table.loc[0, "brier"] == pytest.approx(0.01)
