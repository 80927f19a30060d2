"""The code location: what loads, what it contains, and how automation reacts."""

import subprocess
import sys
from datetime import UTC

import dagster as dg

from mlplatform.definitions import build_definitions
from mlplatform.settings import PROJECT
from mlplatform.specs import Categorical, Numeric, Spec
from mlplatform_tests.conftest import Platform, make_settings
from mlplatform_tests.pipelines import CREDIT

EXPECTED_ASSETS = {
    "credit/raw": "data", "credit/validated": "data", "credit/labels": "data",
    "credit/feature_registry": "features", "credit/features": "features",
    "credit/training_set": "training", "credit/model": "training", "credit/evaluation": "evaluation",
    "credit/bento": "deployment", "credit/staging": "deployment", "credit/production": "deployment",
    "credit/predictions": "monitoring", "credit/data_drift": "monitoring", "credit/live_drift": "monitoring",
    "credit/live_performance": "monitoring",
}
EXPECTED_CHECKS = {"credit/raw:readable", "credit/validated:bad_row_share",
                   "credit/features:online_offline_parity", "credit/training_set:schema",
                   "credit/evaluation:floors", "credit/evaluation:no_regression", "credit/evaluation:fairness",
                   "credit/evaluation:prediction_contract", "credit/data_drift:drift", "credit/live_drift:drift",
                   "credit/live_performance:performance_floor"}

SECOND = Spec(name="churn", entity="account_id", timestamp="event_timestamp", label="churned",
              numeric=(Numeric("tenure_months", 0, 600), Numeric("monthly_spend", 0, 1e6)),
              categorical=(Categorical("plan", ("basic", "pro")),))


def test_the_project_location_loads_with_documented_assets_groups_checks_jobs_and_sensors():
    from demo.definitions import defs

    graph = defs.resolve_asset_graph()
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == EXPECTED_ASSETS
    checks = {f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys}
    assert checks == EXPECTED_CHECKS
    assert all(graph.get(k).code_version for k in graph.get_all_asset_keys())
    gates = [c for c in graph.asset_check_keys if c.asset_key.path[-1] == "evaluation"]
    assert all(defs.resolve_assets_def(c.asset_key).get_spec_for_check_key(c).blocking for c in gates)
    jobs = {j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")}
    assert jobs == {f"credit_{kind}_job" for kind in ("ingest", "training", "promote", "monitoring", "rollback")}
    assert {s.name for s in defs.schedules} == {"credit_monitoring_schedule"}
    # the UI says what each sensor and schedule does
    assert all(len(s.description or "") > 40 for s in [*defs.sensors, *defs.schedules])
    assert {s.name for s in defs.sensors} == {"credit_landing_sensor", "credit_retrain_sensor",
                                              "credit_rollback_sensor", "automation_sensor", "dead_run_sensor"}


def test_every_job_resolves_to_the_documented_steps(tmp_path):
    from demo.definitions import defs

    ingest = defs.resolve_job_def("credit_ingest_job")
    assert {n.name for n in ingest.nodes} == {"credit__feature_registry", "credit__raw", "credit__validated",
                                               "credit__labels", "credit__features"}
    assert ingest.partitions_def.name == "credit_files" and ingest.executor_def.name == "in_process"
    chain = {"credit__training_set", "credit__model", "credit__evaluation", "credit__bento", "credit__staging"}
    assert {n.name for n in defs.resolve_job_def("credit_training_job").nodes} == chain
    assert {n.name for n in defs.resolve_job_def("credit_promote_job").nodes} == {"credit__production"}
    monitoring = defs.resolve_job_def("credit_monitoring_job")
    assert {n.name for n in monitoring.nodes} == {"credit__predictions", "credit__live_drift",
                                                  "credit__live_performance"}
    assert monitoring.partitions_def.get_cron_schedule() == "0 0 * * *"
    automatic = build_definitions([CREDIT], make_settings(tmp_path, MLPLATFORM_PROMOTION="automatic"))
    assert {n.name for n in automatic.resolve_job_def("credit_training_job").nodes} == chain | {"credit__production"}


def test_two_specs_build_side_by_side_without_collisions(tmp_path):
    defs = build_definitions([CREDIT, SECOND], make_settings(tmp_path))
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {k for k in keys if k.startswith("churn/")} == {k.replace("credit", "churn") for k in EXPECTED_ASSETS}
    jobs = {j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")}
    assert jobs == {f"{prefix}{base}_job" for prefix in ("credit_", "churn_")
                    for base in ("ingest", "training", "promote", "monitoring", "rollback")}
    assert defs.resolve_job_def("churn_ingest_job").partitions_def.name == "churn_files"
    assert {s.name for s in defs.sensors} == {f"{name}_{kind}_sensor" for name in ("credit", "churn")
                                              for kind in ("landing", "retrain", "rollback")} | {
        "automation_sensor", "dead_run_sensor"}


def test_a_second_spec_ingests_its_own_files_with_no_new_code(tmp_path):
    import pandas as pd

    settings = make_settings(tmp_path / "home")
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        platform = Platform(settings, build_definitions([CREDIT, SECOND], settings), instance, spec=SECOND)
        frame = pd.DataFrame({"account_id": [1, 2, 3], "event_timestamp": ["2026-01-01T10:00:00Z"] * 3,
                              "tenure_months": [3, 40, 12], "monthly_spend": [10.0, 99.5, 0.0],
                              "plan": ["basic", "pro", "gold"], "churned": [1, 0, 0]})
        platform.land("2026-01-01.csv", frame)
        result = platform.ingest("2026-01-01", job="churn_ingest_job")
        assert not result.success  # one row of three has an unknown plan: 33 % > 5 %
        (failed,) = [c for c in result.get_asset_check_evaluations() if not c.passed]
        assert failed.description == ("1 of 3 rows quarantined: plan: isin(('basic', 'pro')) (1 rows); "
                                      "the file is rejected: all 3 rows are quarantined")


def test_loading_the_code_location_does_not_import_heavy_libraries():
    code = ("import sys, demo.definitions; "
            "print(sorted(m for m in ('feast', 'mlflow', 'pandas', 'pandera', 'bentoml', 'sklearn', 'evidently')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT).stdout
    assert out.strip() == "[]"


def ingest_days(platform, days: range) -> None:  # noqa: ANN001
    for d in days:
        platform.land(f"2026-01-0{d + 1}.csv", day=d, rows=1000)  # enough holdout rows for every fairness slice
        assert platform.ingest(f"2026-01-0{d + 1}").success


def test_a_new_partition_makes_automation_request_only_the_unpartitioned_chain(tracked_platform):
    platform = tracked_platform
    ingest_days(platform, range(3))
    trained = platform.train()
    assert trained.success, [c.description for c in trained.get_asset_check_evaluations() if not c.passed]
    first = dg.evaluate_automation_conditions(defs=platform.defs, instance=platform.instance)
    assert first.total_requested == 0  # everything is fresh
    ingest_days(platform, range(3, 4))
    after = dg.evaluate_automation_conditions(defs=platform.defs, instance=platform.instance, cursor=first.cursor)
    assert after.get_num_requested(dg.AssetKey(["credit", "training_set"])) == 1
    assert after.get_num_requested(dg.AssetKey(["credit", "model"])) == 1  # requested with its upstream
    assert after.get_num_requested(dg.AssetKey(["credit", "evaluation"])) == 1
    assert after.get_num_requested(dg.AssetKey(["credit", "bento"])) == 1
    assert after.get_num_requested(dg.AssetKey(["credit", "staging"])) == 1
    assert after.get_num_requested(dg.AssetKey(["credit", "production"])) == 0  # promotion is manual by default
    # and the drift of the new file only (earlier files keep their judgement)
    assert after.get_requested_partitions(dg.AssetKey(["credit", "data_drift"])) == {"2026-01-04"}
    assert after.total_requested == 6  # the new partition itself was built by its ingest run
    assert platform.ingest("2026-01-04").success  # same file again: same data versions downstream
    again = dg.evaluate_automation_conditions(defs=platform.defs, instance=platform.instance, cursor=after.cursor)
    assert again.total_requested == 0


def test_automation_builds_nothing_from_a_partition_that_failed_its_gate(tracked_platform):
    from mlplatform.lib.data.demo import corrupt, credit_day

    platform = tracked_platform
    ingest_days(platform, range(3))
    assert platform.train().success
    first = dg.evaluate_automation_conditions(defs=platform.defs, instance=platform.instance)
    platform.land("2026-01-04.csv", corrupt(credit_day(3, 300), "nan", share=0.3))
    assert not platform.ingest("2026-01-04").success
    after = dg.evaluate_automation_conditions(defs=platform.defs, instance=platform.instance, cursor=first.cursor)
    assert after.total_requested == 0


def test_the_monitoring_schedule_collects_today_each_hour_and_closes_yesterday_after_midnight():
    from datetime import datetime

    from demo.definitions import defs

    schedule = defs.resolve_schedule_def("credit_monitoring_schedule")
    assert schedule.cron_schedule == "5 * * * *" and schedule.execution_timezone == "UTC"
    at = {h: dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 10, h, 5, tzinfo=UTC))
          for h in (0, 13)}
    midnight, afternoon = (schedule(at[h]) for h in (0, 13))
    assert [r.partition_key for r in midnight] == ["2026-03-10", "2026-03-09"]
    assert [(r.partition_key, r.run_key) for r in afternoon] == [("2026-03-10", "2026-03-10@2026-03-10T13")]
