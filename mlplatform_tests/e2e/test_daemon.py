"""The loop under a real `dagster-daemon run -w workspace.yaml`, as `mlplatform dev` runs it: landed files → the
landing sensor's queued ingest runs → the automation sensor's chain run → a model answering in staging."""

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest

from mlplatform.definitions import build_definitions
from mlplatform.deploy.processes import free_port
from mlplatform.lib.data.demo import DEMO_START, credit_day, write_frame
from mlplatform.orchestration.freshness import AUTOMATION_TAG, SENSOR_TAG
from mlplatform.settings import Settings
from mlplatform_tests.conftest import ROW
from mlplatform_tests.pipelines import CREDIT

REPO = Path(__file__).resolve().parents[2]
DAYS = 6


@pytest.mark.e2e
def test_the_daemon_takes_landed_files_to_a_model_answering_in_staging(tmp_path, migrated_mlflow_db):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("BENTOML_HOME", "MLFLOW_TRACKING_URI")}
    env |= {"MLPLATFORM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
            "MLPLATFORM_STAGING_PORT": str(free_port()), "MLPLATFORM_PRODUCTION_PORT": str(free_port()),
            "MLPLATFORM_AUTOMATION_INTERVAL": "2"}
    settings = Settings.from_env(env)
    # the instance as `mlplatform dev` prepares it (dagster.yaml: the queue, one run at a time; the stores created)
    prepare = ("from mlplatform.settings import get_settings; from mlplatform.orchestration.instance import "
               "prepare_instance; prepare_instance(get_settings())")
    subprocess.run([sys.executable, "-c", prepare], env=env, check=True)
    mlflow_db = Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///"))
    mlflow_db.parent.mkdir(parents=True)
    shutil.copyfile(migrated_mlflow_db, mlflow_db)
    files = [str(DEMO_START + timedelta(days=d)) for d in range(DAYS)]
    for d, stem in enumerate(files):
        write_frame(credit_day(d, 1000), settings.landing_root / CREDIT.name / f"{stem}.csv")
    deployer = build_definitions([CREDIT], settings).resources["deployment"].deployer()
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w",
                                   str(REPO / "workspace.yaml")], env=env, cwd=REPO, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    staging = dg.AssetKey([CREDIT.name, "staging"])
    try:
        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            deadline = time.monotonic() + 480

            def deployed() -> bool:  # staging is materialized and the run that did it has finished
                records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=staging), limit=1).records
                return bool(records) and instance.get_run_by_id(records[0].run_id).is_finished

            while not deployed():
                assert daemon.poll() is None, f"dagster-daemon exited:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"nothing in staging after 480 s:\n{log.read_text()[-3000:]}"
                time.sleep(1)
            answer = httpx.post(f"{deployer.router_url('staging')}/predict", json={"rows": [ROW]}, timeout=30,
                                headers={"x-api-key": deployer.api_key("staging")})
            assert answer.status_code == 200, answer.text
            assert answer.json()["model_version"] == "1"
            runs = [r.dagster_run for r in instance.get_run_records()]
            ingested = sorted(r.tags["dagster/partition"] for r in runs if r.job_name == "credit_ingest_job")
            assert ingested == files
            assert all(r.tags[SENSOR_TAG] == "credit_landing_sensor" for r in runs if r.job_name == "credit_ingest_job")
            chain = [r for r in runs if r.tags.get(AUTOMATION_TAG) == "true" and "dagster/partition" not in r.tags]
            assert len(chain) == 1, [r.asset_selection for r in chain]
            assert {k.path[-1] for k in chain[0].asset_selection} >= {"training_set", "model", "evaluation", "bento",
                                                                     "staging"}
            assert instance.get_run_by_id(chain[0].run_id).status == dg.DagsterRunStatus.SUCCESS
            # every run executed its steps in the run's own process: no step started a worker process of its own
            for run in runs:
                workers = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTING)
                assert not workers, f"{run.job_name} {run.tags.get('dagster/partition')}: a process per step"
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(60)
        deployer.stop_env("staging")
