"""Monitoring assets: the prediction logs of the served models collected per day, through Dagster."""

import time

import dagster as dg
import pandas as pd
import pytest

from mlplatform.serving.predlog import PredictionLog, role_of
from mlplatform_tests.conftest import ROW
from mlplatform_tests.pipelines import CREDIT

pytestmark = pytest.mark.usefixtures("same_utc_day")  # logs filed by UTC day, read back as today


def test_a_days_prediction_logs_become_one_row_per_scored_row_with_version_and_role(platform):
    folder = platform.settings.deployments_dir
    PredictionLog(folder / "staging" / "predictions", "credit_model", "2").append(
        "a" * 32, [ROW, {**ROW, "age": 60}], {"probabilities": [0.1, 0.7], "labels": [0, 1]}, role="direct")
    production = PredictionLog(folder / "production" / "predictions", "credit_model", "1")
    production.append("b" * 32, [ROW], {"probabilities": [0.2], "labels": [0]}, role="primary")
    production.append_raw(b'{"rows": [%s]}' % pd.Series(ROW).to_json().encode(),
                          b'{"request_id": "%s", "model": "credit_model", "model_version": "1", '
                          b'"probabilities": [0.2], "labels": [0]}' % (b"c" * 32), role="candidate")
    # the deployer's smoke test, through the router to the primary: logged, but not traffic
    smoke_role = role_of([(b"x-mlplatform-role", b"primary"), (b"x-mlplatform-traffic", b"smoke:s3cret")], "s3cret")
    # a client's header without the environment's smoke token is traffic like any other
    assert role_of([(b"x-mlplatform-role", b"primary"), (b"x-mlplatform-traffic", b"smoke")], "s3cret") == "primary"
    assert role_of([(b"x-mlplatform-traffic", b"smoke:guess")], "s3cret") == "direct"
    assert role_of([(b"x-mlplatform-traffic", b"smoke:")], "") == "direct"  # a backend without a token
    production.append("d" * 32, [ROW, ROW], {"probabilities": [0.2, 0.2], "labels": [0, 0]}, role=smoke_role)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    key = dg.AssetKey(["credit", "predictions"])
    result = dg.materialize([platform.defs.resolve_assets_def(key)], instance=platform.instance, partition_key=day)
    assert result.success
    frame = result.output_for_node("credit__predictions")
    assert len(frame) == 4 and frame["request_id"].nunique() == 3
    assert list(frame.columns[:5]) == ["env", "request_id", "at", "model_version", "role"]
    assert set(CREDIT.contract_feature_names) <= set(frame.columns)
    staged = frame[frame["env"] == "staging"]
    assert staged["age"].tolist() == [30, 60] and staged["label"].tolist() == [0, 1]
    assert sorted(frame[frame["env"] == "production"]["role"]) == ["candidate", "primary"]
    meta = result.asset_materializations_for_node("credit__predictions")[0].metadata
    assert meta["requests"].value == 3 and meta["dagster/row_count"].value == 4
    assert smoke_role == "smoke" and meta["smoke_rows_left_out"].value == 2
    other_day = "2026-01-02" if day != "2026-01-02" else "2026-01-03"  # a day nothing was logged on
    empty = dg.materialize([platform.defs.resolve_assets_def(key)], instance=platform.instance,
                           partition_key=other_day)
    assert empty.success and len(empty.output_for_node("credit__predictions")) == 0


def test_the_grafana_dashboard_and_scrape_config_use_only_documented_series_on_the_routers_ports():
    import json
    import re
    from pathlib import Path

    import yaml

    from mlplatform.settings import Settings

    folder = Path(__file__).resolve().parents[2] / "bentos"
    documented = set(re.findall(r"^\| `(\w+)` \|", (folder / "README.md").read_text(), flags=re.MULTILINE))
    assert {"mlplatform_predictions_total", "bentoml_service_request_total"} <= documented
    dashboard = json.loads((folder / "monitoring" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs
            for m in re.findall(r"\b((?:bentoml|mlplatform)_\w+)\{", e)}
    assert used == documented  # every documented series is plotted, nothing undocumented is
    config = yaml.safe_load((folder / "monitoring" / "prometheus.yml").read_text())
    targets = {c["labels"]["env"]: c["targets"] for c in config["scrape_configs"][0]["static_configs"]}
    defaults = Settings.from_env({}).ports
    assert targets == {env: [f"127.0.0.1:{port}"] for env, port in defaults.items()}
