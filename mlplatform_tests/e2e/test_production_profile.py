"""The production profile on this machine's PostgreSQL and Redis: `mlplatform up` makes the databases and starts the
MLflow tracking server, the Dagster daemon and UI; landed files of two pipelines go through the landing sensors to
runs in parallel; both pipelines' training runs, launched through the UI's GraphQL API at once, overlap in time;
models are versions in the MLflow server's registry on PostgreSQL; Feast's registry is on PostgreSQL, its online
store on Redis; staging answers /predict; `mlplatform down` stops the services."""

import fcntl
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import dagster as dg
import httpx
import psycopg2
import pytest
import redis

from mlplatform.definitions import resources
from mlplatform.deploy.processes import free_port
from mlplatform.lib.data.demo import DEMO_START, credit_day, write_frame
from mlplatform.settings import DATABASES, Settings
from mlplatform_tests.conftest import ROW

REPO = Path(__file__).resolve().parents[2]
MLPLATFORM = str(Path(sys.executable).parent / "mlplatform")
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS_DB = 12  # a database of its own, emptied before and after
DAYS = 5
PIPELINES = ("credit", "loans")

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
LOCATIONS = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"


def pipeline_yaml(name: str) -> str:
    """The demo's credit pipeline under another name, retrained only when asked (the test launches training)."""
    text = (REPO / "demo" / "defs" / "credit" / "defs.yaml").read_text()
    return text.replace("  name: credit\n", f"  name: {name}\n  retraining: on_trigger\n")


@pytest.fixture
def production(tmp_path: Path):
    """A project with two pipelines on the production profile: databases of their own (a random prefix), Redis
    database 12 (one test at a time across the machine), free ports; everything dropped afterwards."""
    lock = (Path(tempfile.gettempdir()) / f"mlplatform-test-redis-db{REDIS_DB}.lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    online = redis.Redis("127.0.0.1", 6379, db=REDIS_DB)
    online.flushdb()
    root = tmp_path / "teams"
    subprocess.run([MLPLATFORM, "init", str(root), "--pipeline", PIPELINES[0]], check=True, capture_output=True)
    for name in PIPELINES:
        folder = root / "teams" / "defs" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "defs.yaml").write_text(pipeline_yaml(name))
    prefix = f"mlpt_{uuid.uuid4().hex[:10]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLATFORM_", "DAGSTER_", "BENTOML_", "MLFLOW_"))}
    env |= {"MLPLATFORM_PROFILE": "production", "MLPLATFORM_PROJECT": str(root), "MLPLATFORM_POSTGRES": POSTGRES,
            "MLPLATFORM_DATABASE_PREFIX": prefix, "MLPLATFORM_REDIS": f"127.0.0.1:6379,db={REDIS_DB}",
            "MLPLATFORM_MLFLOW_PORT": str(free_port()), "MLPLATFORM_UI_PORT": str(free_port()),
            "MLPLATFORM_STAGING_PORT": str(free_port()), "MLPLATFORM_PRODUCTION_PORT": str(free_port()),
            "MLPLATFORM_MAX_CONCURRENT_RUNS": "4", "MLPLATFORM_AUTOMATION_INTERVAL": "5"}
    settings = Settings.from_env(env | {"MLPLATFORM_HOME": str(root / ".mlplatform"),
                                        "MLPLATFORM_LANDING": str(root / "landing")})
    try:
        yield root, env, settings
    finally:
        # the daemon first: while it runs, its automation could deploy staging again
        subprocess.run([MLPLATFORM, "down"], env=env, cwd=root, capture_output=True)
        subprocess.run([MLPLATFORM, "stop", "staging"], env=env, cwd=root, capture_output=True)
        connection = psycopg2.connect(f"{POSTGRES}/postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            for store in DATABASES:
                cursor.execute(f'DROP DATABASE IF EXISTS "{prefix}_{store}" WITH (FORCE)')
        connection.close()
        online.flushdb()
        lock.close()


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    answer = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def wait_for(what: str, condition, timeout_s: float, logs: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs.glob("*.log"))
            pytest.fail(f"{what}: not after {timeout_s:.0f} s\n{tails}")
        time.sleep(1)


@pytest.mark.e2e
def test_production_profile_runs_two_pipelines_in_parallel_on_postgres_mlflow_server_and_redis(production):
    root, env, settings = production
    up = subprocess.run([MLPLATFORM, "up"], env=env, cwd=root, capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    for store in DATABASES:
        assert f"created database {settings.database_prefix}_{store}" in up.stdout
    assert {line.split()[0] for line in up.stdout.splitlines() if " pid " in line} == {"mlflow", "daemon", "ui"}
    assert httpx.get(f"{settings.mlflow_tracking_uri}/health", timeout=10).text.strip() == "OK"
    logs = settings.home / "logs"

    # training is launched by the test (below), not by the retrain sensors (`on_trigger` starts the first training)
    for name in PIPELINES:
        stop = subprocess.run([str(Path(sys.executable).parent / "dagster"), "sensor", "stop", f"{name}_retrain_sensor",
                               "-m", "teams.definitions", "-d", str(root)],
                              env=env | {"DAGSTER_HOME": str(settings.dagster_home)}, cwd=root, capture_output=True,
                              text=True, timeout=300)
        assert stop.returncode == 0, stop.stdout + stop.stderr
    files = [str(DEMO_START + timedelta(days=d)) for d in range(DAYS)]
    for seed, name in enumerate(PIPELINES):
        for d, stem in enumerate(files):
            write_frame(credit_day(d, 1000, seed=seed), settings.landing_root / name / f"{stem}.csv")

    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"

        def finished(job: str, count: int) -> bool:
            runs = instance.get_runs(dg.RunsFilter(job_name=job))
            return len(runs) >= count and all(r.is_finished for r in runs)

        for name in PIPELINES:  # the landing sensors (in the daemon) ingest every file
            wait_for(f"{name}: {DAYS} ingest runs", lambda n=name: finished(f"{n}_ingest_job", DAYS), 900, logs)
        ingests = [r for n in PIPELINES for r in instance.get_runs(dg.RunsFilter(job_name=f"{n}_ingest_job"))]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in ingests), [
            (r.job_name, r.tags.get("dagster/partition"), r.status) for r in ingests]
        assert {r.tags["dagster/sensor_name"] for r in ingests} == {f"{n}_landing_sensor" for n in PIPELINES}
        assert overlapping(instance, ingests), "no two ingest runs ran at the same time"

        def idle() -> bool:  # the automation's drift runs are done: nothing queued or running
            return not instance.get_run_ids(dg.RunsFilter(statuses=[
                dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED]))

        wait_for("the automation's runs", idle, 900, logs)
        # both pipelines' training, launched at once as the UI launches it; loans stops before staging (the
        # environments of a home serve one pipeline's model: credit's)
        ui = f"http://127.0.0.1:{settings.ui_port}"
        (repository,) = graphql(ui, LOCATIONS)["repositoriesOrError"]["nodes"]
        training = []
        for name in PIPELINES:
            selector = {"repositoryLocationName": repository["location"]["name"],
                        "repositoryName": repository["name"], "pipelineName": f"{name}_training_job"}
            if name == "loans":
                selector["assetSelection"] = [{"path": [name, a]} for a in ("training_set", "model", "evaluation")]
            launched = graphql(ui, LAUNCH, {"params": {"selector": selector, "mode": "default"}})
            assert launched["launchPipelineExecution"]["__typename"] == "LaunchRunSuccess", launched
            training.append(launched["launchPipelineExecution"]["run"]["runId"])
        wait_for("the two training runs", lambda: all(instance.get_run_by_id(i).is_finished for i in training),
                 900, logs)
        runs = [instance.get_run_by_id(i) for i in training]
        assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2, [
            (r.job_name, r.status, [e.dagster_event.event_specific_data.error.message for e in instance.all_logs(
                r.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)]) for r in runs]
        assert overlapping(instance, runs), "the two pipelines' training runs did not overlap in time"
        for run_id in training:  # held while each ran (the dead-run sweep reads them), gone once it ended
            assert not (settings.run_lock / f"{run_id}.lock").exists()

    # the models are versions in the MLflow server's registry, its store on PostgreSQL
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.mlflow_tracking_uri)
    for name in PIPELINES:
        (version,) = client.search_model_versions(f"name = '{name}_model'")
        assert version.source.startswith(("mlflow-artifacts:", "models:/")), version.source
    with psycopg2.connect(settings.database_url("mlflow").replace("+psycopg2", "")) as db, db.cursor() as cursor:
        cursor.execute("SELECT name FROM registered_models ORDER BY name")
        assert [r[0] for r in cursor.fetchall()] == sorted(f"{n}_model" for n in PIPELINES)
    with psycopg2.connect(settings.database_url("feast").replace("+psycopg2", "")) as db, db.cursor() as cursor:
        cursor.execute("SELECT feature_view_name FROM feature_views ORDER BY 1")
        assert [r[0] for r in cursor.fetchall()] == [f"{n}_features" for n in sorted(PIPELINES)]
    assert redis.Redis("127.0.0.1", 6379, db=REDIS_DB).dbsize() > 0

    # staging serves credit's model
    deployer = resources(settings)["deployment"].deployer()
    answer = httpx.post(f"{deployer.router_url('staging')}/predict", json={"rows": [ROW]}, timeout=30,
                        headers={"x-api-key": deployer.api_key("staging")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "1"

    down = subprocess.run([MLPLATFORM, "down"], env=env, cwd=root, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0 and down.stdout.count("stopped") == 3, down.stdout + down.stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{settings.mlflow_tracking_uri}/health", timeout=5)


def overlapping(instance: dg.DagsterInstance, runs: list) -> bool:
    """Whether two of these runs were running at the same moment (from their start and end times)."""
    records = {r.dagster_run.run_id: r for r in instance.get_run_records(
        dg.RunsFilter(run_ids=[run.run_id for run in runs]))}
    spans = [(r.start_time, r.end_time) for r in records.values()]
    return any(a is not b and a[0] <= b[0] < a[1] for a in spans for b in spans)
