"""The production profile against the embedded one on the same work, side by side in one run.

A project with the demo's credit pipeline; N files land at once; timed from landing until the daemon has ingested
every file (one run per partition, from the landing sensor), trained, evaluated and deployed staging (the
automation's chain run) and nothing is queued or running:

  embedded                  sqlite stores, one run at a time (`dagster-daemon` as `mlplatform dev` runs it)
  production, 1 at a time   PostgreSQL, MLflow server, Redis (`mlplatform up`), MLPLATFORM_MAX_CONCURRENT_RUNS=1
  production, 2 at a time   the same with 2

Also per run: its process's start cost (the launcher started it → its first step started: the interpreter, the
code location, the resources), median over the ingest runs. Needs PostgreSQL and Redis on 127.0.0.1 (trust auth).

    .venv/bin/python benchmarks/bench_production.py [--files 6] [--rows 2000]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import dagster as dg
import psycopg2

from mlplatform.deploy.processes import free_port
from mlplatform.lib.data.demo import DEMO_START, credit_day, write_frame
from mlplatform.settings import DATABASES, PROJECT, Settings

BIN = Path(sys.executable).parent
ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED]
REDIS_DB = 14


def project(root: Path) -> Path:
    subprocess.run([str(BIN / "mlplatform"), "init", str(root), "--pipeline", "credit"], check=True,
                   capture_output=True)
    shutil.copyfile(PROJECT / "demo" / "defs" / "credit" / "defs.yaml", root / root.name / "defs" / "credit" /
                    "defs.yaml")
    return root


def environment(root: Path, profile: str, runs: int, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLATFORM_", "DAGSTER_", "BENTOML_", "MLFLOW_"))}
    env |= {"MLPLATFORM_PROJECT": str(root), "MLPLATFORM_PROFILE": profile,
            "MLPLATFORM_STAGING_PORT": str(free_port()), "MLPLATFORM_PRODUCTION_PORT": str(free_port()),
            "MLPLATFORM_AUTOMATION_INTERVAL": "5"}
    if profile == "production":
        env |= {"MLPLATFORM_DATABASE_PREFIX": prefix, "MLPLATFORM_MAX_CONCURRENT_RUNS": str(runs),
                "MLPLATFORM_REDIS": f"127.0.0.1:6379,db={REDIS_DB}", "MLPLATFORM_MLFLOW_PORT": str(free_port()),
                "MLPLATFORM_UI_PORT": str(free_port())}
    return env


def measure(label: str, profile: str, runs: int, files: int, rows: int, folder: Path) -> dict[str, float]:
    root = project(folder / re.sub(r"\W+", "_", label))  # the folder names the project's package
    prefix = f"mlpb_{uuid.uuid4().hex[:10]}"
    env = environment(root, profile, runs, prefix)
    settings = Settings.from_env(env | {"MLPLATFORM_HOME": str(root / ".mlplatform"),
                                        "MLPLATFORM_LANDING": str(root / "landing")})
    env |= {"DAGSTER_HOME": str(settings.dagster_home)}
    daemon = None
    try:
        if profile == "production":
            subprocess.run([str(BIN / "mlplatform"), "up"], env=env, cwd=root, check=True, capture_output=True)
        else:
            prepare = ("from mlplatform.settings import get_settings; from mlplatform.orchestration.instance "
                       "import prepare_instance; prepare_instance(get_settings())")
            subprocess.run([sys.executable, "-c", prepare], env=env, cwd=root, check=True)
            log = (root / "daemon.log").open("wb")
            daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m", f"{root.name}.definitions", "-d",
                                       str(root)], env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        started = time.monotonic()
        for d in range(files):
            write_frame(credit_day(d, rows), settings.landing_root / "credit" / f"{DEMO_START + timedelta(days=d)}.csv")
        staging = dg.AssetKey(["credit", "staging"])
        with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
            while True:
                ingested = instance.get_runs(dg.RunsFilter(job_name="credit_ingest_job"))
                deployed = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=staging), limit=1).records
                if len(ingested) == files and deployed and not instance.get_run_ids(dg.RunsFilter(statuses=ACTIVE)):
                    break
                if time.monotonic() - started > 3600:
                    raise RuntimeError(f"{label}: not done after an hour")
                time.sleep(1)
            wall = time.monotonic() - started
            failed = instance.get_run_ids(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
            starts = []
            for run_id in instance.get_run_ids(dg.RunsFilter(job_name="credit_ingest_job")):
                launched = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_STARTING)
                steps = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
                if steps and launched:  # the launcher started it → its first step started
                    starts.append(min(e.timestamp for e in steps) - launched[0].timestamp)
        return {"wall": wall, "start": statistics.median(starts), "failed": float(len(failed))}
    finally:
        if daemon is not None:  # the daemon first: while it runs, its automation could deploy staging again
            os.killpg(daemon.pid, 15)
            daemon.wait(60)
        if profile == "production":
            subprocess.run([str(BIN / "mlplatform"), "down"], env=env, cwd=root, capture_output=True)
            connection = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/postgres")
            connection.autocommit = True
            with connection.cursor() as cursor:
                for store in DATABASES:
                    cursor.execute(f'DROP DATABASE IF EXISTS "{prefix}_{store}" WITH (FORCE)')
            connection.close()
            import redis

            redis.Redis("127.0.0.1", 6379, db=REDIS_DB).flushdb()
        subprocess.run([str(BIN / "mlplatform"), "stop", "staging"], env=env, cwd=root, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    configs = [("embedded", "embedded", 1), ("production, 1 at a time", "production", 1),
               ("production, 2 at a time", "production", 2)]
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for label, profile, runs in configs:
            results[label] = measure(label, profile, runs, args.files, args.rows, Path(tmp))
            print(f"{label}: {results[label]}", flush=True)
    base = results["embedded"]["wall"]
    print(f"{args.files} files of {args.rows} rows → ingested, trained, evaluated and in staging")
    print(f"{'':26} {'wall s':>8} {'vs embedded':>12} {'run start s':>12} {'failed runs':>12}")
    for label, r in results.items():
        print(f"{label:26} {r['wall']:8.1f} {r['wall'] / base:11.2f}× {r['start']:12.1f} {r['failed']:12.0f}")
    one, two = results["production, 1 at a time"]["wall"], results["production, 2 at a time"]["wall"]
    print(f"production: 2 at a time takes {two / one:.2f}× the wall time of 1 at a time")


if __name__ == "__main__":
    main()
