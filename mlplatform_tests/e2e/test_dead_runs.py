"""A run whose process is killed stays STARTED in Dagster (and RUNNING in MLflow) until the platform sees that no
process holds the home's run lock: then it is marked failed, naming why, and `mlplatform retry` takes it up."""

import fcntl
import os
import shutil
import signal
import subprocess
import time

import dagster as dg
import pytest

from mlplatform.orchestration.dead_runs import KILLED, end_mlflow_runs, home_is_idle, sweep
from mlplatform_tests.e2e.test_cli import BIN, REPO, run

pytestmark = pytest.mark.e2e


def started_run(instance: dg.DagsterInstance, timeout: float = 300) -> dg.RunRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]), limit=1)
        if records:
            return records[0]
        time.sleep(0.2)
    raise AssertionError("no run started")


def test_a_killed_run_is_marked_failed_once_no_process_holds_the_lock_and_can_be_retried(tmp_path):
    home, mlp = tmp_path, str(BIN / "mlplatform")
    run([mlp, "demo-data", "--days", "1", "--rows-per-day", "200"], home)
    lock = home / ".run.lock"
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "BENTOML_HOME", "MLFLOW_TRACKING_URI")}
    env |= {"MLPLATFORM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        with lock.open("a+") as held:  # a run of this home in progress: the ingest's run waits for it
            fcntl.flock(held, fcntl.LOCK_EX)
            ingest = subprocess.Popen([mlp, "ingest", "--no-train"], env=env, cwd=REPO, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                victim = started_run(instance)
                assert sweep(instance, lock, grace_s=0) == []  # the lock is held: nothing is dead
            finally:
                os.killpg(ingest.pid, signal.SIGKILL)  # kill -9, mid-run
                ingest.wait(30)
        run_id = victim.dagster_run.run_id
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED  # what a kill leaves behind
        assert home_is_idle(lock)
        assert sweep(instance, lock, grace_s=3600) == []  # too recent to be sure
        assert sweep(instance, lock, grace_s=0) == [run_id]
        failed = instance.get_run_by_id(run_id)
        assert failed.status == dg.DagsterRunStatus.FAILURE
        (event,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert KILLED in event.message
    retried = run([mlp, "retry", run_id], home)
    assert "re-executed" in retried.stdout and retried.stdout.rstrip().endswith(": ok"), retried.stdout


def test_the_mlflow_runs_of_a_dead_run_are_ended_as_killed(tmp_path, migrated_mlflow_db):
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    shutil.copyfile(migrated_mlflow_db, db)
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.create_experiment("mlplatform/credit", artifact_location=(tmp_path / "a").as_uri())
    dead = client.create_run(experiment, tags={"dagster.run_id": "dead-run"}).info.run_id
    alive = client.create_run(experiment, tags={"dagster.run_id": "other-run"}).info.run_id
    assert end_mlflow_runs(client, ["dead-run"]) == [dead]
    assert client.get_run(dead).info.status == "KILLED" and client.get_run(alive).info.status == "RUNNING"
