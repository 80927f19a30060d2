"""Runs of one home never overlap: the embedded stores are single-writer, so a second run waits for the first and
fails, naming it, when it does not end in time."""

import fcntl
import uuid

import dagster as dg

from mlplatform.definitions import build_definitions
from mlplatform.orchestration.runner import _failures
from mlplatform_tests.conftest import Platform, make_settings
from mlplatform_tests.pipelines import CREDIT


def test_a_run_waits_for_the_homes_lock_and_fails_naming_its_holder(tmp_path):
    settings = make_settings(tmp_path / "home", MLPLATFORM_RUN_LOCK_TIMEOUT="1")
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        platform = Platform(settings, build_definitions([CREDIT], settings), instance)
        platform.land("2026-01-01.csv", day=0, rows=200)
        lock = settings.home / ".run.lock"
        with lock.open("a+") as held:  # another run of this home, in another process, holds it
            fcntl.flock(held, fcntl.LOCK_EX)
            held.write("run 1234abcd (pid 42)\n")
            held.flush()
            blocked = platform.ingest("2026-01-01")
            assert not blocked.success and not platform.materialized("raw", "2026-01-01")
            assert _failures(blocked) == ("this home's runs do not overlap (single-writer embedded stores), and run "
                                          "1234abcd (pid 42) still runs after 1 s; try again when it ends")
        assert platform.ingest("2026-01-01").success  # released: the run goes ahead
        assert lock.read_text() == ""  # and leaves the lock free and blank


def test_production_runs_hold_a_lock_of_their_own_and_a_run_nobody_holds_is_swept_as_dead(tmp_path):
    """Runs in parallel (production profile) each hold `runs/<run id>.lock`: neither waits for the other, the lock is
    gone when the run ends, and a started run whose lock nobody holds is marked failed by the dead-run sweep."""
    from mlplatform.orchestration.dead_runs import sweep
    from mlplatform.resources import RunLock, RunStorage

    settings = make_settings(tmp_path / "home", MLPLATFORM_PROFILE="production")
    assert settings.run_lock == settings.home / "runs"

    @dg.asset
    def step() -> int:
        return 1

    storage = RunStorage(base_dir=str(tmp_path / "storage"), lock=RunLock(path=str(settings.run_lock), per_run=True))
    defs = dg.Definitions(assets=[step], jobs=[dg.define_asset_job("step_job")], resources={"io_manager": storage})
    job = defs.resolve_job_def("step_job")
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        held = settings.run_lock / "someone-else.lock"
        held.parent.mkdir(parents=True)
        with held.open("a+") as other:  # another run in progress does not hold this one back
            fcntl.flock(other, fcntl.LOCK_EX)
            assert job.execute_in_process(instance=instance).success
        assert [p.name for p in settings.run_lock.iterdir()] == ["someone-else.lock"]  # its own lock is gone
        live_id, dead_id = str(uuid.uuid4()), str(uuid.uuid4())
        runs = [instance.create_run_for_job(job, run_id=run_id) for run_id in (live_id, dead_id)]
        for run in runs:  # both marked started, as a launched run's process marks itself
            instance.report_dagster_event(dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job.name), run.run_id)
        with (settings.run_lock / f"{live_id}.lock").open("a+") as live:  # the live run's process holds its lock
            fcntl.flock(live, fcntl.LOCK_EX)
            assert sweep(instance, settings.run_lock, grace_s=3600, per_run=True) == []  # too recent to be sure
            assert sweep(instance, settings.run_lock, grace_s=0, per_run=True) == [dead_id]
        assert instance.get_run_by_id(live_id).status == dg.DagsterRunStatus.STARTED
        failed = instance.get_run_by_id(dead_id)
        assert failed.status == dg.DagsterRunStatus.FAILURE
        (message,) = [e.message for e in instance.all_logs(dead_id, of_type=dg.DagsterEventType.RUN_FAILURE)]
        assert message.endswith("no process holds this run's lock")
