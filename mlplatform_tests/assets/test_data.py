"""The data layer run by Dagster: bad files stop at their gate, bad rows are quarantined, nothing is lost."""

import dagster as dg
import pandas as pd
import pytest

from mlplatform.lib.data.demo import CORRUPTIONS, corrupt, credit_day, write_corrupt
from mlplatform.lib.data.landing import content_hash
from mlplatform.lib.data.validation import FAILURES_COLUMN

FILE_LEVEL = {"empty", "truncated-parquet", "truncated-csv", "bad-header", "not-data", "wide-header", "truncated-gzip"}


def failed_checks(result) -> dict[str, str]:  # noqa: ANN001
    return {f"{c.asset_key.to_user_string()}:{c.check_name}": c.description
            for c in result.get_asset_check_evaluations() if not c.passed}


def metadata(result, name: str) -> dict:  # noqa: ANN001
    (event,) = [m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == name]
    return {k: v.value for k, v in event.materialization.metadata.items()}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_a_defective_file_fails_its_gate_and_builds_nothing_downstream(platform, kind):
    path = write_corrupt(credit_day(0, 200), kind, platform.landing / "bad")
    result = platform.ingest("bad")
    assert not result.success
    checks = failed_checks(result)
    if kind in FILE_LEVEL:
        assert list(checks) == ["credit/raw:readable"]
        assert checks["credit/raw:readable"].startswith(f"{path.name}: ")
        assert ((platform.settings.quarantine_dir / "credit" / f"bad.file{path.suffix}").read_bytes()
                == path.read_bytes())
        assert not platform.materialized("validated", "bad")
    else:
        assert list(checks) == ["credit/validated:bad_row_share"]
        counts = metadata(result, "validated")
        assert counts["rows_in"] == counts["rows_valid"] + counts["rows_quarantined"] == 200
        # the file is rejected: every row of it is in the quarantine, as landed, with why
        assert (counts["rows_valid"], counts["rows_quarantined"]) == (0, 200)
        kept = pd.read_parquet(platform.settings.quarantine_dir / "credit" / "bad.rows.parquet")
        assert len(kept) == counts["rows_quarantined"] and kept[FAILURES_COLUMN].str.len().min() > 0
    for downstream in ("labels", "features"):
        assert not platform.materialized(downstream, "bad")


def test_the_gate_message_names_columns_checks_and_counts(platform):
    platform.land("bad.csv", corrupt(credit_day(0, 200), "out-of-range", share=0.1))
    checks = failed_checks(platform.ingest("bad"))
    assert checks == {"credit/validated:bad_row_share":
                      "20 of 200 rows quarantined: age: less_than_or_equal_to(100) (20 rows); "
                      "the file is rejected: all 200 rows are quarantined"}
    kept = pd.read_parquet(platform.settings.quarantine_dir / "credit" / "bad.rows.parquet")
    reasons = kept[FAILURES_COLUMN].value_counts()
    assert reasons.to_dict() == {"file rejected: 10.0% of its rows failed the contract (more than 5.0%)": 180,
                                 "age: less_than_or_equal_to(100)": 20}
    assert kept.index.tolist() == list(range(200))  # the rows in landed order, none lost, none twice


def test_few_bad_rows_are_quarantined_and_the_rest_flows_on(platform):
    platform.land("ok.csv", corrupt(credit_day(0, 200), "unknown-category", share=0.03))
    result = platform.ingest("ok")
    assert result.success, failed_checks(result)
    counts = metadata(result, "validated")
    assert (counts["rows_valid"], counts["rows_quarantined"]) == (194, 6)
    assert metadata(result, "labels")["dagster/row_count"] == 194
    assert metadata(result, "features")["dagster/row_count"] == 194
    kept = pd.read_parquet(platform.settings.quarantine_dir / "credit" / "ok.rows.parquet")
    assert set(kept["home_ownership"]) == {"castle"}


def test_the_threshold_is_run_config(platform):
    platform.land("ok.csv", corrupt(credit_day(0, 200), "nan", share=0.03))
    platform.instance.add_dynamic_partitions("credit_files", ["ok"])
    config = {"ops": {"credit__validated": {"config": {"max_bad_row_share": 0.01}}}}
    result = platform.defs.resolve_job_def("credit_ingest_job").execute_in_process(
        instance=platform.instance, partition_key="ok", run_config=config, raise_on_error=False)
    assert failed_checks(result) == {"credit/validated:bad_row_share":
                                     "6 of 200 rows quarantined: credit_utilization: not_nullable (6 rows); "
                                     "the file is rejected: all 200 rows are quarantined"}


def test_a_bad_partition_leaves_the_others_alone(platform):
    platform.land("2026-01-01.csv", day=0)
    write_corrupt(credit_day(1, 200), "missing-column", platform.landing / "2026-01-02")
    platform.land("2026-01-03.csv", day=2)
    outcomes = {k: platform.ingest(k).success for k in ("2026-01-01", "2026-01-02", "2026-01-03")}
    assert outcomes == {"2026-01-01": True, "2026-01-02": False, "2026-01-03": True}
    assert platform.materialized("features", "2026-01-03") and not platform.materialized("features", "2026-01-02")


def test_raw_records_row_count_schema_and_content_hash(platform):
    path = platform.land("2026-01-01.csv", rows=123)
    meta = metadata(platform.ingest("2026-01-01"), "raw")
    assert meta["dagster/row_count"] == 123 and meta["sha256"] == content_hash(path)
    assert [c.name for c in meta["dagster/column_schema"].columns][:2] == ["customer_id", "event_timestamp"]
    (record,) = platform.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["credit", "raw"]), asset_partitions=["2026-01-01"]),
        limit=1).records
    assert record.asset_materialization.tags["dagster/data_version"] == content_hash(path)


def test_a_file_rejected_under_one_contract_is_validated_again_once_the_contract_changes(platform):
    import dataclasses

    from mlplatform.definitions import build_definitions
    from mlplatform.orchestration.freshness import REJECTED, ingested
    from mlplatform.specs import Numeric

    path = platform.land("old.csv", corrupt(credit_day(0, 200), "out-of-range", share=0.2))  # ages of 150
    assert not platform.ingest("old").success
    spec, digest = platform.spec, content_hash(path)
    validated = dg.AssetKey([spec.name, "validated"])
    contract = platform.defs.resolve_assets_def(validated).code_versions_by_key[validated]
    assert ingested(platform.instance, spec.name, "old", digest, contract) == REJECTED
    wider = dataclasses.replace(spec, numeric=tuple(Numeric("age", 18, 200, integer=True) if c.name == "age" else c
                                                    for c in spec.numeric))
    defs = build_definitions([wider], platform.settings)
    assert ingested(platform.instance, wider.name, "old", digest,
                    defs.resolve_assets_def(validated).code_versions_by_key[validated]) is None
    platform.defs = defs
    assert platform.ingest("old").success  # the same file, valid under the fixed contract
