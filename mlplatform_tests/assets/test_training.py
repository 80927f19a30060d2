"""The training set: point-in-time correct, validated, and versioned by content."""

import dagster as dg
import pandas as pd

from mlplatform.lib.data.demo import corrupt, credit_day
from mlplatform_tests.pipelines import CREDIT


def data_version(platform, name: str = "training_set") -> str:  # noqa: ANN001
    record = platform.instance.get_latest_data_version_record(dg.AssetKey(["credit", name]))
    return record.asset_materialization.tags["dagster/data_version"]


def test_training_set_joins_each_label_to_features_as_of_its_own_time(platform):
    day0, day2 = credit_day(0, 200), credit_day(2, 200)
    day2[CREDIT.entity] = day0[CREDIT.entity].to_numpy()  # the same customers come back two days later
    platform.land("2026-01-01.csv", day0)
    platform.land("2026-01-03.csv", day2)
    assert platform.ingest("2026-01-01").success and platform.ingest("2026-01-03").success
    result = platform.build_training_set()
    assert result.success
    frame = result.output_for_node("credit__training_set")
    assert len(frame) == 400 and not frame[CREDIT.feature_names].isna().any().any()
    early = frame[frame["_partition"] == "2026-01-01"].set_index(CREDIT.entity).sort_index()
    source = day0.set_index(CREDIT.entity).sort_index()
    # A naive join on the entity would take the later (2026-01-03) values: the income differs day to day.
    assert early["income"].tolist() == source["income"].astype(float).tolist()
    assert (early[CREDIT.timestamp] == source[CREDIT.timestamp]).all()
    assert early[CREDIT.label].tolist() == source[CREDIT.label].tolist()


def test_training_set_leaves_out_partitions_that_failed_their_gate(platform):
    platform.land("2026-01-01.csv", day=0)
    platform.land("2026-01-02.csv", corrupt(credit_day(1, 300), "out-of-range", share=0.2))
    assert platform.ingest("2026-01-01").success and not platform.ingest("2026-01-02").success
    result = platform.build_training_set()
    assert result.success
    frame = result.output_for_node("credit__training_set")
    assert set(frame["_partition"]) == {"2026-01-01"}
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["partitions"].value == ["2026-01-01"]


def test_data_version_changes_only_when_inputs_change(platform):
    platform.land("2026-01-01.csv", day=0)
    assert platform.ingest("2026-01-01").success and platform.build_training_set().success
    first = data_version(platform)
    assert platform.ingest("2026-01-01").success and platform.build_training_set().success
    assert data_version(platform) == first
    platform.land("2026-01-01.csv", credit_day(0, 300).assign(income=lambda f: f["income"] + 1))
    assert platform.ingest("2026-01-01").success and platform.build_training_set().success
    assert data_version(platform) != first


def test_training_without_any_ingested_partition_says_what_to_do(platform):
    result = platform.build_training_set()
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "credit: no partition has validated features yet; ingest a landed file first" in str(
        failure.step_failure_data.user_failure_data.description)


def test_training_set_rows_pass_the_pandera_schema(platform):
    platform.land("2026-01-01.csv", day=0)
    platform.ingest("2026-01-01")
    result = platform.build_training_set()
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "schema" and evaluation.passed
    frame = result.output_for_node("credit__training_set")
    assert str(frame[CREDIT.timestamp].dtype) == "datetime64[ns, UTC]"
    assert pd.api.types.is_float_dtype(frame["age"]) and frame[CREDIT.label].dtype == "int64"


def test_a_file_that_repeats_an_earlier_files_keys_does_not_block_the_training_set(platform):
    day0 = credit_day(0, 200)
    platform.land("2026-01-01.csv", day0)
    platform.land("2026-01-02.csv", day0)  # the same file again, under a new name
    platform.land("2026-01-03.csv", day=2, rows=200)
    for partition in ("2026-01-01", "2026-01-02", "2026-01-03"):
        assert platform.ingest(partition).success
    result = platform.build_training_set()
    assert result.success, [c.description for c in result.get_asset_check_evaluations() if not c.passed]
    frame = result.output_for_node("credit__training_set")
    assert len(frame) == 400 and set(frame["_partition"]) == {"2026-01-01", "2026-01-03"}
    assert not frame.duplicated([CREDIT.entity, CREDIT.timestamp]).any()
    meta = result.asset_materializations_for_node("credit__training_set")[0].metadata
    assert meta["repeated_keys"].value == {"2026-01-02": "200 rows repeat (customer_id, event_timestamp) pairs of "
                                                         "earlier partition 2026-01-01: left out"}


def test_a_schema_failure_names_the_check_the_column_and_the_partitions():
    from mlplatform.lib.features.training_set import schema_failures

    frame = pd.DataFrame({"_partition": ["a", "b", "b", "c"], "age": [1, 200, 300, 4]})
    failures = pd.DataFrame({"column": ["age", "age"], "check": ["less_than_or_equal_to(100)"] * 2,
                             "index": [1, 2], "failure_case": [200, 300]})
    assert schema_failures(failures, frame) == ("2 failing values: age: less_than_or_equal_to(100) (2 values in "
                                                "partitions b)")
