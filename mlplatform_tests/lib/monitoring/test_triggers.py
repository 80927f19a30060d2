"""The retraining and rollback triggers: their decisions, and the retrain sensor over a real platform."""

import dataclasses
import json

import dagster as dg

from mlplatform.lib.data.demo import credit_day
from mlplatform.lib.monitoring import triggers
from mlplatform.lib.monitoring.triggers import Batch, Day
from mlplatform.specs import Monitoring
from mlplatform_tests.conftest import Platform, make_settings

POLICY = Monitoring()  # 3 batches at error; roc_auc tolerance 0.02 over ≥ 50 labelled rows


def batch(partition: str, severity: str, reference: str = "ref1") -> Batch:
    return Batch("data", partition, severity, reference, f"{severity} on {partition}")


def test_drift_retrains_only_when_it_persists_against_one_reference_and_there_is_something_new_to_learn():
    streak = [batch("d6", "error"), batch("d5", "error"), batch("d4", "not judged"), batch("d3", "error")]
    decision = triggers.retrain(streak, [], [], POLICY, ["d5", "d6"], "tsv1")
    assert isinstance(decision, triggers.Decision) and decision.trigger == "drift"
    assert decision.reason == "data drift at error or worse in the last 3 batches (d3, d5, d6): error on d6"
    assert decision.run_key == "retrain:data_drift=d3,d5,d6:tsv1"
    assert decision.tags()["mlplatform/trigger"] == "drift"
    # a warn in the streak, a change of reference, or too few batches: no retraining
    for batches in ([batch("d6", "error"), batch("d5", "warn"), batch("d3", "error")],
                    [batch("d6", "error"), batch("d5", "error"), batch("d3", "error", reference="ref0")],
                    streak[:2]):
        assert triggers.retrain(batches, [], [], POLICY, ["d6"], "tsv1").startswith(
            "no persistent drift and no live performance below its floor since the last training (data drift: ")
    # the sensor's tick says how far each trigger is
    assert triggers.retrain(streak[:2], [], [], POLICY, ["d6"], "tsv1").endswith(
        "(data drift: 2 of 3 judged batches in a row at error or worse (d5, d6); live drift: 0 of 3 judged batches "
        "in a row at error or worse; live performance: no judged day)")
    # retraining on trigger only: the first model is trained by the sensor too, once labels have landed
    first = triggers.retrain([], [], [], POLICY, ["d1", "d2"], triggers.NEVER_TRAINED, first_training=True)
    assert (first.trigger, first.reason) == ("first_training", "no model yet: first training on 2 landed partitions")
    assert isinstance(triggers.retrain([], [], [], POLICY, ["d1"], triggers.NEVER_TRAINED), str)  # automation trains
    # evidence from before the newest training set does not count (that training answered it)
    assert isinstance(triggers.retrain([dataclasses.replace(b, at=5) for b in streak], [], [], POLICY, ["d6"],
                                       "tsv1", trained_at=9), str)
    # the model already learnt from every landed label: retraining would reproduce it
    assert triggers.retrain(streak, [], [], POLICY, [], "tsv1").endswith(
        "but every landed label is in the current training set (nothing new to learn)")


def test_live_performance_below_its_floor_on_the_latest_judged_day_retrains():
    below = Day("2026-03-09", {"3": {"labelled_rows": 80, "roc_auc": 0.6}}, "3", True, True,
                "v3 below its floor on 80 labelled rows: roc_auc 0.600 < 0.65")
    unjudged = Day("2026-03-10", {"3": {"labelled_rows": 5}}, "3", False, False, "v3: 5 labelled rows, ...")
    decision = triggers.retrain([], [], [unjudged, below], POLICY, ["f9"], "tsv1")
    assert decision.trigger == "performance" and decision.evidence["performance"] == "2026-03-09"
    assert decision.reason == "live performance on 2026-03-09: v3 below its floor on 80 labelled rows: " \
                              "roc_auc 0.600 < 0.65"
    recovered = Day("2026-03-10", {"3": {"labelled_rows": 90, "roc_auc": 0.8}}, "3", True, False, "")
    assert isinstance(triggers.retrain([], [], [recovered, below], POLICY, ["f9"], "tsv1"), str)


PROMOTION = {"action": "promote", "at": "2026-03-10T09:00:00+00:00", "champion": {"from": "1", "to": "2"}}


def day(partition: str, **versions: tuple[int, float]) -> Day:
    return Day(partition, {v[1:]: {"labelled_rows": n, "roc_auc": auc} for v, (n, auc) in versions.items()})


def test_a_promoted_champion_worse_live_than_the_one_it_replaced_is_rolled_back():
    days = [day("2026-03-11", v2=(300, 0.70)), day("2026-03-10", v1=(100, 0.81), v2=(100, 0.72)),
            day("2026-03-09", v1=(400, 0.79))]
    decision = triggers.rollback(PROMOTION, "2", days, POLICY)
    assert decision.trigger == "live_performance" and decision.run_key == "rollback:2026-03-10T09:00:00+00:00:2"
    assert decision.reason == ("live roc_auc of v2 is 0.705 on 400 labelled rows, 0.089 below v1's 0.794 on 500 "
                               "(tolerance 0.02); v1 serves again")
    assert triggers.rollback(PROMOTION, "2", [day("d", v1=(500, 0.80), v2=(500, 0.79))], POLICY).endswith(
        "within the tolerance (0.02)")
    assert triggers.rollback(PROMOTION, "2", [day("d", v1=(500, 0.80), v2=(20, 0.5))], POLICY).startswith(
        "not enough labelled rows yet to compare v2 (20) with v1 (500)")
    assert triggers.rollback(PROMOTION, "1", days, POLICY) == "production no longer serves v2 (it serves v1)"
    assert triggers.rollback({**PROMOTION, "action": "rollback"}, "2", days, POLICY) == (
        "production's newest change is not a promotion")
    first = {**PROMOTION, "champion": {"from": None, "to": "1"}}
    assert triggers.rollback(first, "1", days, POLICY) == "the promotion replaced no earlier champion"


def test_an_error_rate_above_the_maximum_rolls_back_before_any_label_lands():
    series = [("/predict", 200, 180), ("/predict", 500, 20), ("/predict", 400, 50), ("/readyz", 500, 7)]
    metrics = "\n".join([
        "# HELP bentoml_service_request_total Total number of HTTP requests",
        "# TYPE bentoml_service_request_total counter",
        *(f'bentoml_service_request_total{{endpoint="{e}",http_response_code="{c}",service_name="s",'
          f'service_version="1"}} {n}.0' for e, c, n in series), ""])
    rate, requests = triggers.error_rate(metrics)
    assert requests == 250 and rate == 0.08  # 4xx count as requests, not as failures; health probes not at all
    decision = triggers.rollback(PROMOTION, "2", [], POLICY, (rate, requests))
    assert decision.trigger == "error_rate"
    assert decision.reason == ("v2 failed 8.0% of 250 prediction requests since its promotion (maximum 5%); "
                               "v1 serves again")
    assert isinstance(triggers.rollback(PROMOTION, "2", [], POLICY, (0.5, 40)), str)  # too few requests to judge


def test_the_retrain_sensor_starts_the_training_job_with_the_reason_when_landed_data_keeps_drifting(
        tmp_path, migrated_mlflow_db):
    import shutil

    from mlplatform.definitions import build_definitions
    from mlplatform_tests.pipelines import CREDIT

    settings = make_settings(tmp_path / ".mlplatform", MLPLATFORM_RETRAINING="on_trigger")
    target = settings.mlflow_tracking_uri.removeprefix("sqlite:///")
    (tmp_path / ".mlplatform" / "mlflow").mkdir(parents=True)
    shutil.copyfile(migrated_mlflow_db, target)
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        platform = Platform(settings, build_definitions([CREDIT], settings), instance)
        graph = platform.defs.resolve_asset_graph()  # on_trigger: new data alone does not retrain
        assert graph.get(dg.AssetKey(["credit", "training_set"])).automation_condition is None
        for d in range(3):
            platform.land(f"2026-01-0{d + 1}.csv", day=d, rows=1000)
            assert platform.ingest(f"2026-01-0{d + 1}").success
        assert platform.train().success
        sensor = platform.defs.resolve_sensor_def("credit_retrain_sensor")

        def tick():  # noqa: ANN202
            return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=platform.defs))

        assert tick().skip_message.startswith("no persistent drift and no live performance below its floor since "
                                              "the last training (data drift: 0 of 3 judged batches")
        data_drift = platform.defs.resolve_assets_def(dg.AssetKey(["credit", "data_drift"]))
        validated = platform.defs.resolve_assets_def(dg.AssetKey(["credit", "validated"])).to_source_assets()
        for d in range(3, 6):  # three landed files from the shifted population, each judged on arrival
            platform.land(f"2026-01-0{d + 1}.csv", credit_day(d, 400, drifted=True))
            assert platform.ingest(f"2026-01-0{d + 1}").success
            assert dg.materialize([data_drift, *validated], instance=instance, partition_key=f"2026-01-0{d + 1}",
                                  raise_on_error=False).success
        (request,) = tick().run_requests
        assert sensor.job_name == "credit_training_job" and request.tags["mlplatform/trigger"] == "drift"
        assert request.tags["mlplatform/reason"] == (
            "data drift at error or worse in the last 3 batches (2026-01-04, 2026-01-05, 2026-01-06): 3 of 10 "
            "features drifted (30%, severity error): income, credit_utilization, num_late_payments")
        evidence = json.loads(request.tags["mlplatform/evidence"])
        assert evidence["unseen_label_partitions"] == ["2026-01-04", "2026-01-05", "2026-01-06"]
        assert tick().run_requests[0].run_key == request.run_key  # the same evidence: one run, however many ticks
        retrained = platform.defs.resolve_job_def("credit_training_job").execute_in_process(
            instance=instance, tags=request.tags, raise_on_error=False,
            asset_selection=[dg.AssetKey(["credit", n]) for n in ("training_set", "model", "evaluation")])
        assert retrained.success
        runs = instance.get_runs(dg.RunsFilter(tags={"mlplatform/trigger": "drift"}))
        assert len(runs) == 1 and runs[0].tags["mlplatform/reason"] == request.tags["mlplatform/reason"]
        # the retraining answered that evidence: three new drifted batches are needed for another
        assert tick().skip_message.startswith("no persistent drift and no live performance below its floor")


def test_a_regression_champion_whose_live_rmse_rose_is_rolled_back_and_a_lower_one_is_kept():
    def rmse_day(partition: str, **versions: tuple[int, float]) -> Day:
        return Day(partition, {v[1:]: {"labelled_rows": n, "rmse": e} for v, (n, e) in versions.items()})

    policy = POLICY  # an error metric: its tolerance is also 5 % of the previous champion's value
    worse = triggers.rollback(PROMOTION, "2", [rmse_day("d", v1=(500, 50.0), v2=(500, 58.0))], policy,
                              metric="rmse", direction=-1)
    assert worse.trigger == "live_performance"
    assert worse.reason == ("live rmse of v2 is 58.000 on 500 labelled rows, 8.000 above v1's 50.000 on 500 "
                            "(tolerance 2.500, 5% of v1's); v1 serves again")
    noise = triggers.rollback(PROMOTION, "2", [rmse_day("d", v1=(500, 50.0), v2=(500, 51.5))], policy,
                              metric="rmse", direction=-1)
    assert noise == "v2 rmse 51.500 vs v1 50.000: within the tolerance (2.500, 5% of v1's)"
    better = triggers.rollback(PROMOTION, "2", [rmse_day("d", v1=(500, 50.0), v2=(500, 41.0))], policy,
                               metric="rmse", direction=-1)
    assert better.endswith("within the tolerance (2.500, 5% of v1's)")
