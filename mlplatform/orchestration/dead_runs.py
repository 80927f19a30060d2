"""Runs whose process died (killed, out of memory, a reboot) stay STARTED in Dagster and RUNNING in MLflow.

A run of a home holds the home's lock for as long as its process lives (`resources.RunLock`), so when nothing holds
the lock, a run marked as started (for longer than a live run takes to take the lock) has no process left: it is
marked failed, naming why, and the MLflow runs it opened are ended as killed. In the production profile runs go in
parallel and each holds a lock file of its own in the home's `runs/` folder (a run container shares the host's
kernel and the home's folder, so its lock is seen from the host): a started run whose lock nobody holds is dead.
Then `mlplatform retry` (or the UI's re-execution) can take it up. The daemon sweeps with `dead_run_sensor`; the
commands that run jobs sweep first.
"""

import fcntl
import time
from pathlib import Path
from typing import Any

import dagster as dg

# A run takes the lock as it starts (its resources, before any step): a run started this recently may not have it yet.
# (A run still STARTING, its process loading the code, holds no lock yet: it is never judged here.)
GRACE_S = 120.0
KILLED = "its process ended without finishing (killed, out of memory, or the machine restarted): no process holds"


def home_is_idle(lock_path: Path) -> bool:
    """Whether no live process holds the home's run lock (taken and released at once to find out)."""
    if not lock_path.exists():
        return True
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
    return True


def sweep(instance: dg.DagsterInstance, lock_path: Path, grace_s: float = GRACE_S, per_run: bool = False
          ) -> list[str]:
    """Mark the dead runs of the home failed; returns their ids (for `end_mlflow_runs`). `lock_path`: the home's
    lock file, or with `per_run` (production) the folder of the runs' own locks (Settings.run_lock)."""
    if not per_run and not home_is_idle(lock_path):
        return []
    now, dead = time.time(), []
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        since = max(record.start_time or 0.0, record.update_timestamp.timestamp())  # when it became STARTED
        lock = lock_path / f"{record.dagster_run.run_id}.lock" if per_run else lock_path
        if now - since < grace_s or not home_is_idle(lock):  # too young, or its lock is held
            continue
        whose = "this run's lock" if per_run else "this home's run lock"
        instance.report_run_failed(record.dagster_run, message=f"run {record.dagster_run.run_id}: {KILLED} {whose}")
        dead.append(record.dagster_run.run_id)
    return dead


def end_mlflow_runs(client: Any, run_ids: list[str]) -> list[str]:
    """End the MLflow runs still RUNNING that these Dagster runs opened, as KILLED; returns the MLflow run ids."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    ended = []
    for run_id in run_ids:
        query = f"tags.`dagster.run_id` = '{run_id}' and attributes.status = 'RUNNING'"
        for run in client.search_runs(experiments, filter_string=query) if experiments else []:
            client.set_terminated(run.info.run_id, status="KILLED")
            ended.append(run.info.run_id)
    return ended
