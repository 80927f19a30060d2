"""Runs of one home never overlap: the embedded stores are single-writer, so a second run waits for the first and
fails, naming it, when it does not end in time."""

import fcntl

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
