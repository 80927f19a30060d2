"""P8 under a real `dagster-daemon run` (for bench_loop.py): a landed file to a new model serving in staging, with
the queued run coordinator, a process per run and automation every `interval` seconds; the run timeline, the
daemon's cost per automation evaluation and its idle CPU."""

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import dagster as dg

from mlplatform.components.pipeline import load_spec
from mlplatform.definitions import build_definitions
from mlplatform.deploy.embedded import EmbeddedDeployer
from mlplatform.deploy.processes import free_port
from mlplatform.orchestration.loop import compute_seconds
from mlplatform.settings import PROJECT, Settings

CREDIT = load_spec(PROJECT / "demo" / "defs" / "credit" / "defs.yaml")  # the demo project's pipeline

ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
          dg.DagsterRunStatus.NOT_STARTED]


def automation_ticks(instance: dg.DagsterInstance, after: float) -> list[float]:
    """Durations of the automation sensor's evaluations since `after` (wall clock)."""
    states = [s for s in instance.all_instigator_state() if s.instigator_name == "automation_sensor"]
    ticks = [t for s in states for t in instance.get_ticks(s.instigator_origin_id, s.selector_id, after=after)]
    return [t.end_timestamp - t.timestamp for t in ticks if t.end_timestamp]


def idle_cpu(pid: int, seconds: float = 60) -> float:
    """CPU seconds per second of the daemon and its children (code server, sensors) while nothing runs."""
    import psutil

    def used() -> dict[int, float]:
        root, out = psutil.Process(pid), {}
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                out[proc.pid] = times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return out

    before = used()
    time.sleep(seconds)
    after = used()  # a process that started in the window counts from zero; one that ended is not counted
    return sum(after[p] - before.get(p, 0.0) for p in after) / seconds


@dataclass
class Daemon:
    """A `dagster-daemon run` on its own platform home, and what the measurement reads of it."""

    home: Path
    settings: Settings
    deployer: EmbeddedDeployer
    process: subprocess.Popen
    log: Path
    timeout: float

    @classmethod
    def start(cls, home: Path, interval: int, timeout: float) -> "Daemon":
        env = {**os.environ, "MLPLATFORM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
               "MLPLATFORM_STAGING_PORT": str(free_port()), "MLPLATFORM_PRODUCTION_PORT": str(free_port()),
               "MLPLATFORM_AUTOMATION_INTERVAL": str(interval)}
        for name in ("BENTOML_HOME", "MLFLOW_TRACKING_URI"):
            env.pop(name, None)
        subprocess.run([sys.executable, "-c", "from mlplatform.settings import get_settings; get_settings().export()"],
                       env=env, check=True)  # the instance's dagster.yaml, as `mlplatform dev` writes it
        settings = Settings.from_env(env)
        resources = build_definitions([CREDIT], settings).resources
        assert resources is not None
        log = home / "daemon.log"
        with log.open("wb") as out:
            process = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w",
                                        str(PROJECT / "workspace.yaml")], env=env, cwd=PROJECT, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        deployer = cast(EmbeddedDeployer, resources["deployment"].deployer())  # the embedded profile's
        return cls(home, settings, deployer, process, log, timeout)

    def stop(self) -> None:
        os.killpg(self.process.pid, 15)
        self.process.wait(60)
        self.deployer.stop_env("staging")

    def serving(self) -> str | None:
        """The version staging's router routes to (the record it has applied)."""
        record, state = self.deployer.deployments.read("staging"), self.deployer.router_state("staging")
        return record.primary.model_version if record and state and state.get("sequence") == record.sequence else None

    def wait(self, what: str, done: Callable[[], bool]) -> float:
        deadline = time.monotonic() + self.timeout
        while not done():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what}: daemon exited or timed out; log {self.log}")
            time.sleep(0.5)
        return time.perf_counter()


def timeline(instance: dg.DagsterInstance, runs: list[dg.RunRecord], offset: float) -> list[dict[str, Any]]:
    """Each run's creation, start and end (seconds after `offset`, the wall clock of the landing) and step time."""
    out = []
    for r in sorted(runs, key=lambda r: r.create_timestamp):
        stats = instance.get_run_stats(r.dagster_run.run_id)
        what = r.dagster_run.tags.get("dagster/partition") or "unpartitioned"
        assets = sorted(k.path[-1] for k in r.dagster_run.asset_selection or [])
        out.append({"run": f"{r.dagster_run.job_name}[{what}] {','.join(assets)}",
                    "created_s": round(r.create_timestamp.timestamp() - offset, 1),
                    "started_s": round((stats.start_time or 0) - offset, 1),
                    "ended_s": round((stats.end_time or 0) - offset, 1),
                    "steps_s": round(compute_seconds(instance, r.dagster_run.run_id), 1)})
    return out


def measure(daemon: Daemon, instance: dg.DagsterInstance, land: Callable[[int], object], interval: int,
            ) -> dict[str, Any]:
    """From landing day 6 to staging serving the model trained on it, once the first model serves and all is quiet."""
    def quiet() -> bool:
        return not instance.get_run_records(dg.RunsFilter(statuses=ACTIVE), limit=1)

    daemon.wait("first model in staging", lambda: daemon.serving() is not None)
    served = daemon.serving()
    time.sleep(interval + 5)  # one more automation tick: nothing else is asked once the first model serves
    daemon.wait("quiet", quiet)
    idle = idle_cpu(daemon.process.pid)
    daemon.wait("quiet", quiet)
    before = {r.dagster_run.run_id for r in instance.get_run_records()}
    land(6)
    landed = time.perf_counter()
    daemon.wait("the ingest run", lambda: len(instance.get_run_records()) > len(before))
    new = [r for r in instance.get_run_records() if r.dagster_run.run_id not in before]
    detected = min(r.create_timestamp.timestamp() for r in new) - (time.time() - time.perf_counter())
    live = daemon.wait("a new model in staging", lambda: daemon.serving() not in (None, served))
    now = daemon.serving()
    daemon.wait("quiet", quiet)
    offset = time.time() - time.perf_counter() + landed  # wall clock of the landing
    runs = [r for r in instance.get_run_records() if r.dagster_run.run_id not in before
            and "dagster/schedule_name" not in r.dagster_run.tags]  # the hourly monitoring is not the path
    # the path: the runs that started before staging served the new version (the batch's drift run counts when it
    # ran before the chain, not when it was queued behind it)
    path = [r for r in runs if (instance.get_run_stats(r.dagster_run.run_id).start_time or 0)
            < offset + live - landed]
    return {"version": now, "latency": live - landed, "sensor_wait": detected - landed, "idle": idle,
            "compute": sum(compute_seconds(instance, r.dagster_run.run_id) for r in path),
            "jobs": sorted(r.dagster_run.job_name for r in path), "ticks": automation_ticks(instance, offset),
            "timeline": timeline(instance, runs, offset)}


def p8_daemon(land: Callable[[Settings, int, int], object], rows: int, work: Path, interval: int, sample: int = 0,
              timeout: float = 900) -> dict:
    """P8 under a real `dagster-daemon`; `land(settings, day, rows)` writes a landed file."""
    daemon = Daemon.start(work / f"p8-daemon-{sample}-{interval}s", interval, timeout)
    for d in range(6):
        land(daemon.settings, d, rows)
    try:
        with dg.DagsterInstance.from_config(str(daemon.home / "dagster")) as instance:
            m = measure(daemon, instance, lambda day: land(daemon.settings, day, rows), interval)
    finally:
        daemon.stop()
    return report(m, interval)


def report(m: dict[str, Any], interval: int) -> dict:
    latency, sensor_wait, compute, ticks = m["latency"], m["sensor_wait"], m["compute"], m["ticks"]
    ratio = (latency - sensor_wait) / compute
    # the automation sensor's wait: from the end of the ingest run to the creation of the chain's run (the batch's
    # drift run may be asked for earlier, once `validated` is in, and so may run before the chain)
    ingest = next(t for t in m["timeline"] if t["run"].startswith("credit_ingest_job"))
    chain = next(t for t in m["timeline"] if "[unpartitioned]" in t["run"])
    automation_wait = chain["created_s"] - ingest["ended_s"]
    both = (latency - sensor_wait - automation_wait) / compute
    tick = sum(ticks) / len(ticks) if ticks else float("nan")
    print(f"  P8 (dagster-daemon, automation every {interval} s) landed file → v{m['version']} serving in staging: "
          f"{latency:.1f} s, of which {sensor_wait:.1f} s until the landing sensor's tick; runs on the path "
          f"{', '.join(m['jobs'])}: steps {compute:.1f} s; ({latency:.1f} − {sensor_wait:.1f}) / {compute:.1f} = "
          f"{ratio:.2f}; minus the automation sensor's wait ({automation_wait:.1f} s) as well: {both:.2f}; "
          f"automation evaluations: {len(ticks)}, {tick:.2f} s each; idle daemon CPU {m['idle']:.0%} of a core",
          flush=True)
    for t in m["timeline"]:
        print(f"      {t['run']:60} created {t['created_s']:6.1f} s, ran {t['started_s']:6.1f} → "
              f"{t['ended_s']:6.1f} s, steps {t['steps_s']:5.1f} s", flush=True)
    return {"interval_s": interval, "latency_s": round(latency, 1), "sensor_wait_s": round(sensor_wait, 1),
            "steps_s": round(compute, 1), "runs": m["jobs"], "ratio": ratio,
            "automation_wait_s": round(automation_wait, 1), "ratio_minus_both_sensor_waits": both,
            "automation_tick_s": tick, "idle_daemon_cpu": m["idle"], "timeline": m["timeline"]}
