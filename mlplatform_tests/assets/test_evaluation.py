"""Evaluation and gates through Dagster: real training runs, real MLflow registry, real reports on disk."""

import json
import re

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlplatform.deploy.packaging import bento_file
from mlplatform.lib.data.demo import credit_day

DAYS, ROWS = 5, 1000
GATES = {"floors", "no_regression", "fairness", "prediction_contract"}


def biased_day(day: int, rows: int) -> pd.DataFrame:
    """A demo day whose labels were recorded with a bias against the youngest applicants."""
    frame = credit_day(day, rows)
    young = frame["age"] <= 25
    frame.loc[young, "default"] = (np.random.default_rng(day).random(int(young.sum())) < 0.6).astype("int64")
    return frame


def ingest(platform, make_day=credit_day) -> None:  # noqa: ANN001
    for d in range(DAYS):
        platform.land(f"2026-01-0{d + 1}.csv", make_day(d, ROWS))
        assert platform.ingest(f"2026-01-0{d + 1}").success


def train_config(**model: object) -> dict:
    return {"ops": {"credit__model": {"config": model}}} if model else {}


def train(platform, run_config: dict | None = None, bento: bool = False) -> dg.ExecuteInProcessResult:  # noqa: ANN001
    return platform.train(bento=bento, run_config=run_config)


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {c.check_name: c for c in result.get_asset_check_evaluations() if c.asset_key.path[-1] == "evaluation"}


def client(platform):  # noqa: ANN001, ANN201
    from mlflow.tracking import MlflowClient

    return MlflowClient(platform.settings.mlflow_tracking_uri)


def make_champion(platform, version: str) -> None:  # noqa: ANN001
    """What a promotion does to the registry (promotion itself belongs to deployment)."""
    client(platform).set_registered_model_alias("credit_model", "champion", version)


def model_labels(platform) -> dict[str, dict]:  # noqa: ANN001
    """Labels of every model in the platform's BentoML store, read from the store's files."""
    import yaml

    folder = platform.settings.bentoml_home / "models" / "credit_model"
    return {p.parent.name: yaml.safe_load(p.read_text())["labels"] for p in folder.glob("*/model.yaml")}


def bento_yaml(platform) -> str:  # noqa: ANN001
    return "".join(p.read_text() for p in (platform.settings.bentoml_home / "bentos").glob("*/*/bento.yaml"))


def assessment_data_version(result) -> str:  # noqa: ANN001
    return result.output_for_node("credit__model").training_set_version


@pytest.fixture
def good(tracked_platform):
    ingest(tracked_platform)
    return tracked_platform


def test_a_good_model_passes_every_gate_with_a_report_a_card_and_tags(good):
    # ECE is judged from min_calibration_rows holdout rows (run config): here never
    result = train(good, {"ops": {"credit__evaluation": {"config": {"min_calibration_rows": 1_000_000}}}}, bento=True)
    assert result.success
    outcome = checks(result)
    assert set(outcome) == GATES and all(c.passed for c in outcome.values())
    assert outcome["no_regression"].description == "no champion yet: the floors alone decide"
    assert "expected_calibration_error not judged:" in outcome["floors"].description
    assert outcome["floors"].description.endswith("holdout rows, fewer than 1000000")
    assessment = result.output_for_node("credit__evaluation")
    files = assessment.files
    html = files["report_html"].read_text()
    assert html.count("data:image/png;base64,") == 5 and "Challenger vs champion" in html  # with SHAP's summary
    assert "Explanations (SHAP)" in html and (files["shap_summary"]).stat().st_size > 0
    report_md = files["report_md"].read_text()
    assert "| roc_auc |" in report_md and "| demographic_parity_difference |" in report_md.replace("| 0", "|0")
    card = files["model_card"].read_text()
    assert "# Model card: credit_model v1" in card and "2026-01-01 … 2026-01-05" in card
    assert "SHAP linear explainer on 300 holdout rows" in card
    assert re.search(r"^\| 1 \| 1 \| (\w+) \| [0-9.]+ \| -?[0-9.]+ \|$", card, re.M)  # the top feature of class 1
    assert (result.run_id in card
            and "feature service `credit_v1`" in card.lower().replace("feature service", "feature service"))
    (event,) = [m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "evaluation"]
    meta = event.materialization.metadata
    assert meta["roc_auc"].value == pytest.approx(assessment.metrics["roc_auc"]) and meta["roc_auc"].value > 0.65
    assert meta["report"].value == str(files["report_html"]) and meta["gates_passed"].value is True
    version = client(good).get_model_version("credit_model", "1")
    assert version.tags["gates"] == "passed" and version.tags["gate.fairness"] == "passed"
    run = client(good).get_run(version.run_id)
    assert run.data.tags["gate.floors"] == "passed"
    assert run.data.metrics["eval_roc_auc"] == pytest.approx(assessment.metrics["roc_auc"])
    logged = {a.path for a in client(good).list_artifacts(version.run_id, "evaluation")}
    assert {"evaluation/report.html", "evaluation/model_card.md", "evaluation/roc_curve.png",
            "evaluation/shap_summary.png", "evaluation/shap_importance.csv"} <= logged
    (packaged,) = [m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "bento"]
    bento_meta = packaged.materialization.metadata
    assert bento_meta["bento_tag"].value.startswith("credit_service:")
    assert bento_meta["registered_model"].value == "credit_model v1"
    packed = json.loads(bento_file(result.output_for_node("credit__bento").bento_path, "explainer.json").read_text())
    assert (packed["method"], packed["unit"], packed["seed"]) == ("linear", "log_odds", 42)
    assert len(packed["background"]["rows"]) == 100
    assert bento_meta["model_tag"].value in bento_yaml(good)
    labels = model_labels(good)
    assert list(labels.values()) == [{"mlflow_model": "credit_model", "mlflow_version": "1",
                                      "dagster_run": result.run_id,
                                      "data_version": assessment_data_version(result),
                                      "code_version": good.defs.resolve_asset_graph().get(
                                          dg.AssetKey(["credit", "model"])).code_version}]


def test_a_feature_ignoring_model_fails_the_floors_and_the_bento_is_not_built(good):
    assert train(good).success
    make_champion(good, "1")
    result = train(good, train_config(estimator="constant"), bento=True)
    assert not result.success
    outcome = checks(result)
    assert not outcome["floors"].passed and "roc_auc 0.5000 < floor 0.6500" in outcome["floors"].description
    assert not outcome["no_regression"].passed and "vs champion v1" in outcome["no_regression"].description
    assert outcome["prediction_contract"].passed
    materialized = {m.asset_key.path[-1] for m in result.get_asset_materialization_events()}
    assert "evaluation" in materialized and "bento" not in materialized
    assert "credit__bento" in {n.name for n in good.defs.resolve_job_def("credit_training_job").nodes}
    assert model_labels(good) == {}  # version 2 was never packaged
    registry = client(good)
    assert str(registry.get_model_version_by_alias("credit_model", "champion").version) == "1"
    assert str(registry.get_model_version_by_alias("credit_model", "challenger").version) == "2"
    assert registry.get_model_version("credit_model", "2").tags["gate.floors"] == "failed"
    assert registry.get_model_version("credit_model", "2").tags["gates"] == "failed"


def test_a_regression_against_the_champion_alone_blocks(good):
    assert train(good).success
    make_champion(good, "1")
    loose = {"ops": {"credit__model": {"config": {"estimator": "constant"}},
                     "credit__evaluation": {"config": {"floors": {}, "ceilings": {}}}}}
    result = train(good, loose)
    outcome = checks(result)
    assert not result.success
    assert [n for n, c in outcome.items() if not c.passed] == ["no_regression"]
    assert "roc_auc 0.5000 vs champion v1" in outcome["no_regression"].description
    assert "relative drop" in outcome["no_regression"].description


def test_a_retrained_equal_model_does_not_regress_against_its_champion(good):
    assert train(good).success
    make_champion(good, "1")
    result = train(good)
    assert result.success and checks(result)["no_regression"].passed
    assert "no regression vs champion v1" in checks(result)["no_regression"].description


def test_a_model_unfair_to_one_slice_fails_only_the_fairness_gate(tracked_platform):
    ingest(tracked_platform, biased_day)
    result = train(tracked_platform)
    outcome = checks(result)
    assert not result.success
    assert [n for n, c in outcome.items() if not c.passed] == ["fairness"]
    text = outcome["fairness"].description
    assert "demographic_parity_difference" in text and "> bound 0.2500" in text and "18-25" in text


def test_a_failed_evaluation_is_re_executed_from_failure_without_retraining(good):
    from mlplatform.orchestration.runner import reexecute_from_failure
    from mlplatform.project import Project
    from mlplatform_tests.pipelines import DEMO

    DEMO_PROJECT = Project.at(DEMO.parent)  # the checkout: its demo project declares the pipeline this test runs

    blocker = good.settings.home / "artifacts" / "reports" / "credit"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the reports folder should be")  # the disk refuses the report
    failed = train(good)
    assert not failed.success and failed.output_for_node("credit__model").registered.version == "1"
    blocker.unlink()
    ok, text = reexecute_from_failure(failed.run_id, good.settings, good.instance, DEMO_PROJECT)
    assert ok, text
    assert "re-executed credit__evaluation: ok" in text
    assert [str(m.version) for m in client(good).search_model_versions("name='credit_model'")] == ["1"]
    assert (blocker / "v1" / "report.html").exists()
    with pytest.raises(ValueError, match="is SUCCESS, not FAILURE"):
        reexecute_from_failure(text.split()[1], good.settings, good.instance, DEMO_PROJECT)
