"""The loop in one process: what `dagster-daemon` does for the project, tick by tick, until nothing more is asked.

Each pass evaluates every sensor (landing, retraining, rollback) and then the automation conditions, and executes
the runs they request in this process, tagged as the daemon tags them (sensor name, run key, automation). Run keys
are honoured like the daemon does: a key already launched is not launched again. Used by `mlplatform loop` (the
demo of the whole loop without a daemon), by the rebuild tests and by the benchmarks; the daemon remains the way
to run the platform.
"""

import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import dagster as dg

from mlplatform.orchestration.freshness import AUTOMATION_TAG, SENSOR_TAG

RUN_KEY_TAG = "dagster/run_key"


@dataclass
class Run:
    """One run the loop executed: who asked, what it materialized, how long it took."""

    source: str  # a sensor's name, or "automation"
    job: str
    partition: str | None
    requested: list[str]
    materialized: list[str]
    ok: bool
    seconds: float
    compute_seconds: float
    tags: dict[str, str] = field(default_factory=dict)
    error: str = ""
    run_id: str = ""

    def line(self) -> str:
        where = f" [{self.partition}]" if self.partition else ""
        built = ", ".join(self.materialized) or "nothing (every requested asset was fresh)"
        status = "ok" if self.ok else f"FAILED ({self.error})"
        return f"{self.source:>24} → {self.job}{where}: {status}: {built} ({self.seconds:.1f} s)"


def compute_seconds(instance: dg.DagsterInstance, run_id: str) -> float:
    """Sum of the run's step durations (start to success or failure), as the run's event log records them."""
    return sum((s.end_time or s.start_time or 0) - (s.start_time or 0) for s in instance.get_run_step_stats(run_id))


def _error(result: dg.ExecuteInProcessResult) -> str:
    """The failed steps and failed blocking checks of a run, in a line."""
    problems = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None:  # Dagster wraps the asset's own error
                error = error.cause
            problems.append(f"{event.step_key}: {error.message.strip()}")
    problems += [f"{c.asset_key.to_user_string()}:{c.check_name} failed: {c.description}"
                 for c in result.get_asset_check_evaluations() if not c.passed]
    return "; ".join(problems)


def _materialized(result: dg.ExecuteInProcessResult) -> list[str]:
    out = []
    for event in result.get_asset_materialization_events():
        m = event.materialization
        out.append(m.asset_key.to_user_string() + (f"[{m.partition}]" if m.partition else ""))
    return out


class Loop:
    """Sensors and automation of `defs` over `instance`, executed in process; `defs` may be swapped between
    settles (a new checkout) while the cursors carry on, as they do across a daemon's code reloads."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance,
                 log: Callable[[str], None] | None = None, state: Path | None = None,
                 run_log_level: str = "DEBUG") -> None:
        """`state`: a file keeping the sensor and automation cursors between processes (as the daemon keeps them
        in its storage), so a later loop carries on where this one stopped. `run_log_level`: what each run
        prints to the console (its events are stored in the instance either way)."""
        self.defs, self.instance, self.log, self.state = defs, instance, log or (lambda _line: None), state
        self.loggers = {"console": {"config": {"log_level": run_log_level}}}
        self.cursors: dict[str, str | None] = defaultdict(lambda: None)
        self.automation_cursor: Any = None
        self.runs: list[Run] = []
        if state is not None and state.exists():
            saved = json.loads(state.read_text())
            self.cursors.update(saved["sensors"])
            self.automation_cursor = dg.deserialize_value(saved["automation"]) if saved["automation"] else None

    def save(self) -> None:
        if self.state is None:
            return
        automation = dg.serialize_value(self.automation_cursor) if self.automation_cursor is not None else None
        self.state.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"sensors": dict(self.cursors), "automation": automation}))
        tmp.replace(self.state)

    def _launched(self, sensor: str, run_key: str | None) -> bool:
        if not run_key:
            return False
        return bool(self.instance.get_run_records(dg.RunsFilter(tags={SENSOR_TAG: sensor, RUN_KEY_TAG: run_key}),
                                                  limit=1))

    def _execute(self, source: str, job: dg.JobDefinition, partition: str | None, tags: dict[str, str],
                 run_config: Mapping[str, Any] | None = None, assets: Sequence[dg.AssetKey] | None = None) -> Run:
        started = time.perf_counter()
        run_config = {**(run_config or {}), "loggers": self.loggers}
        result = job.execute_in_process(instance=self.instance, partition_key=partition, run_config=run_config,
                                        tags=tags, asset_selection=assets, raise_on_error=False)
        requested = sorted(k.to_user_string() for k in assets) if assets else [job.name]
        run = Run(source, job.name, partition, requested, _materialized(result), result.success,
                  time.perf_counter() - started, compute_seconds(self.instance, result.run_id), tags,
                  "" if result.success else _error(result), result.run_id)
        self.runs.append(run)
        self.log(run.line())
        return run

    def sensors(self) -> int:
        """One tick of every sensor but the automation sensor; returns how many runs they started."""
        started = 0
        assert self.defs.sensors is not None
        for sensor in self.defs.sensors:
            if isinstance(sensor, dg.AutomationConditionSensorDefinition):
                continue
            # the resources the sensor asks for, only (the IO manager would take the home's run lock)
            resources = {k: v for k, v in (self.defs.resources or {}).items() if k in sensor.required_resource_keys}
            context = dg.build_sensor_context(instance=self.instance, definitions=self.defs, resources=resources,
                                              cursor=self.cursors[sensor.name])
            # the sensor's function, as the daemon calls it; partitions are added below. The project's sensors
            # return a SensorResult or skip.
            data = cast(dg.SensorResult | dg.SkipReason | None, sensor(context))
            if data is None or isinstance(data, dg.SkipReason):
                continue
            self.cursors[sensor.name] = data.cursor if data.cursor is not None else context.cursor
            for partitions in data.dynamic_partitions_requests or []:
                if isinstance(partitions, dg.AddDynamicPartitionsRequest):
                    self.instance.add_dynamic_partitions(partitions.partitions_def_name,
                                                         list(partitions.partition_keys))
            for request in data.run_requests or []:
                if self._launched(sensor.name, request.run_key):
                    continue
                tags = {**request.tags, SENSOR_TAG: sensor.name} | ({RUN_KEY_TAG: request.run_key}
                                                                    if request.run_key else {})
                job_name = request.job_name or sensor.job_name
                assert job_name is not None
                job = self.defs.resolve_job_def(job_name)
                self._execute(sensor.name, job, request.partition_key, tags, request.run_config,
                              request.asset_selection)
                started += 1
        return started

    def automation(self) -> int:
        """One automation tick: the requested asset partitions, grouped into one run per partition."""
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance,
                                                   cursor=self.automation_cursor)
        self.automation_cursor = result.cursor
        graph = self.defs.resolve_asset_graph()
        groups: dict[tuple[str, str | None], list[dg.AssetKey]] = defaultdict(list)
        for asset_key in graph.get_all_asset_keys():
            definition = graph.get(asset_key).partitions_def
            for partition in result.get_requested_partitions(asset_key):
                groups[(repr(definition), partition)].append(asset_key)
        job = self.defs.resolve_implicit_global_asset_job_def()
        # per-partition runs first: they judge a batch against the model that was current when it landed
        for group in sorted(groups, key=lambda g: (g[1] is None, g)):
            self._execute("automation", job, group[1], {AUTOMATION_TAG: "true"}, assets=groups[group])
        return len(groups)

    def settle(self, max_passes: int = 12) -> list[Run]:
        """Tick sensors then automation until a whole pass starts nothing; returns the runs of this settle."""
        first = len(self.runs)
        if self.automation_cursor is None:
            self.automation()  # the first tick only records what exists, as a new daemon's does
        for _ in range(max_passes):
            if self.sensors() + self.automation() == 0:
                break
        else:
            self.save()
            raise RuntimeError(f"the loop still had work after {max_passes} passes")
        self.save()
        return self.runs[first:]

    def materialized(self, since: int = 0) -> set[str]:
        """Asset partitions materialized by the runs from index `since` on."""
        return {m for run in self.runs[since:] for m in run.materialized}
