"""The landing sensor against a real temporary landing folder."""

import os

import dagster as dg

from mlplatform.lib.data.demo import credit_day
from mlplatform.lib.data.landing import content_hash


def tick(platform, cursor: str | None = None) -> dg.SensorResult:  # noqa: ANN001
    sensor = platform.defs.resolve_sensor_def("credit_landing_sensor")
    context = dg.build_sensor_context(instance=platform.instance, cursor=cursor,
                                      resources={"landing": platform.defs.resources["landing"]},
                                      definitions=platform.defs)
    return sensor(context)


def requested(result: dg.SensorResult) -> list[tuple[str, str]]:
    """(partition, run key without its mtime suffix)."""
    return [(r.partition_key, r.run_key.rsplit(":", 1)[0]) for r in result.run_requests]


def test_new_files_add_partitions_and_request_one_run_each(platform):
    a, b = platform.land("2026-01-01.csv", day=0), platform.land("2026-01-02.parquet", day=1)
    result = tick(platform)
    assert requested(result) == [("2026-01-01", f"2026-01-01:{content_hash(a)}"),
                                 ("2026-01-02", f"2026-01-02:{content_hash(b)}")]
    (add,) = result.dynamic_partitions_requests
    assert add.partitions_def_name == "credit_files" and list(add.partition_keys) == ["2026-01-01", "2026-01-02"]
    assert all(r.job_name in (None, "credit_ingest_job") for r in result.run_requests)


def test_a_file_seen_before_with_the_same_content_triggers_nothing(platform):
    path = platform.land("2026-01-01.csv", day=0)
    first = tick(platform)
    platform.instance.add_dynamic_partitions("credit_files", ["2026-01-01"])
    assert requested(tick(platform, first.cursor)) == []
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # touched, same bytes
    again = tick(platform, first.cursor)
    assert requested(again) == [] and again.dynamic_partitions_requests == []


def test_a_changed_file_reruns_only_its_partition(platform):
    platform.land("2026-01-01.csv", day=0)
    platform.land("2026-01-02.csv", day=1)
    first = tick(platform)
    platform.instance.add_dynamic_partitions("credit_files", ["2026-01-01", "2026-01-02"])
    changed = platform.land("2026-01-02.csv", day=1, rows=301)
    result = tick(platform, first.cursor)
    assert requested(result) == [("2026-01-02", f"2026-01-02:{content_hash(changed)}")]
    assert result.dynamic_partitions_requests == []


def test_a_file_changed_back_to_earlier_content_runs_again(platform):
    first_bytes = platform.land("2026-01-01.csv", day=0).read_bytes()
    a = tick(platform)
    platform.instance.add_dynamic_partitions("credit_files", ["2026-01-01"])
    platform.land("2026-01-01.csv", day=0, rows=310)
    b = tick(platform, a.cursor)
    path = platform.landing / "2026-01-01.csv"
    path.write_bytes(first_bytes)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    c = tick(platform, b.cursor)
    assert requested(c) == requested(a)
    assert len({a.run_requests[0].run_key, c.run_requests[0].run_key}) == 2  # Dagster would skip a reused key


def test_two_files_for_one_partition_are_refused_by_name_and_the_others_ingested(platform, capfd):
    platform.land("2026-01-01.csv", day=0)
    platform.land("2026-01-01.parquet", day=0)
    platform.land("2026-01-02.csv", day=1)
    result = tick(platform)
    assert [p for p, _ in requested(result)] == ["2026-01-02"]
    log = capfd.readouterr().err
    for name in ("2026-01-01.csv", "2026-01-01.parquet"):
        assert (f"{name}: refused: 2026-01-01.csv, 2026-01-01.parquet map to one partition '2026-01-01': rename "
                "all but one") in log


def test_files_being_written_and_other_files_are_ignored(platform):
    platform.landing.mkdir(parents=True)
    (platform.landing / ".2026-01-01.csv.tmp").write_text("half")
    (platform.landing / "README.txt").write_text("not data")
    assert requested(tick(platform)) == []


def test_a_sensor_run_ingests_the_new_partition_end_to_end(platform):
    platform.land("2026-01-01.csv", day=0)
    result = tick(platform)
    for add in result.dynamic_partitions_requests:
        platform.instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys))
    (request,) = result.run_requests
    run = platform.defs.resolve_job_def("credit_ingest_job").execute_in_process(
        instance=platform.instance, partition_key=request.partition_key, tags=request.tags)
    assert run.success and platform.materialized("features", "2026-01-01")


def test_a_symbolic_link_is_never_a_partition_and_each_tick_says_why(platform, tmp_path, capfd):
    secret = tmp_path / "api-keys"
    secret.write_text("customer_id,event_timestamp\n1,2026-01-01\n")
    platform.land("2026-01-01.csv", day=0)
    (platform.landing / "keys.csv").symlink_to(secret)
    result = tick(platform)
    assert [p for p, _ in requested(result)] == ["2026-01-01"]
    assert "keys.csv: refused: not a regular file: symbolic links" in capfd.readouterr().err  # the tick's log


def test_files_ingested_outside_the_daemon_are_not_ingested_again_by_its_first_tick(platform):
    """`mlplatform ingest` before `mlplatform dev`: the instance says what happened to each file, whoever ran it."""
    from mlplatform.lib.data.demo import corrupt
    from mlplatform.orchestration.freshness import REJECTED, UNCHANGED, ingested

    good = platform.land("2026-01-01.csv", day=0)
    bad = platform.land("2026-01-02.csv", corrupt(credit_day(1, 300), "out-of-range", share=0.2))
    assert platform.ingest("2026-01-01").success and not platform.ingest("2026-01-02").success
    assert ingested(platform.instance, "credit", "2026-01-01", content_hash(good)) == UNCHANGED
    assert ingested(platform.instance, "credit", "2026-01-02", content_hash(bad)) == REJECTED
    assert ingested(platform.instance, "credit", "2026-01-02", "another-content") is None
    assert ingested(platform.instance, "credit", "2026-01-03", content_hash(good)) is None  # never read
    first = tick(platform)  # the daemon starts: an empty cursor
    assert requested(first) == [] and first.dynamic_partitions_requests == []
    changed = platform.land("2026-01-02.csv", day=1)  # fixed: a new content is ingested, once
    assert requested(tick(platform, first.cursor)) == [("2026-01-02", f"2026-01-02:{content_hash(changed)}")]
