"""Running the jobs against the project's Dagster instance from the command line (demo, CI)."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import dagster as dg

from mlplatform import jobs
from mlplatform.assets._shared import key
from mlplatform.definitions import resources
from mlplatform.lib.data.landing import content_hash
from mlplatform.orchestration import freshness
from mlplatform.partitions import file_partitions
from mlplatform.project import Project
from mlplatform.settings import Settings
from mlplatform.specs import Spec


@dataclass
class Outcome:
    """What a command-line ingestion did, partition by partition, and whether it all went well (`ok`: exit 0)."""

    pipeline: str
    partitions: dict[str, str] = field(default_factory=dict)
    training: str = "not run"
    ok: bool = True
    refused: dict[str, str] = field(default_factory=dict)  # landing folder entries never read, with why
    ignored: dict[str, str] = field(default_factory=dict)  # entries that are not landed files, with why
    trained: bool = False  # the training job ran and succeeded

    def report(self) -> str:
        lines = [f"  {partition:32} {status}" for partition, status in self.partitions.items()]
        lines += [f"  {name:32} refused: {why}" for name, why in self.refused.items()]
        lines += [f"  {name:32} ignored: {why}" for name, why in self.ignored.items() if not name.startswith(".")]
        return "\n".join(["ingestion:", *lines, f"{jobs.job_name(self.pipeline, 'training')}: {self.training}",
                          self.summary()])

    def summary(self) -> str:
        """One line: how many files went which way, the training's outcome, and why the exit code is 1."""
        statuses = list(self.partitions.values())
        ingested = sum(s.startswith("ok") for s in statuses)
        unchanged = sum(s == "unchanged" for s in statuses)
        rejected = len(statuses) - ingested - unchanged
        training = ("ok" if self.trained else "unchanged" if self.training.startswith("unchanged")
                    else "not run" if self.training == "not run" else "failed")
        why = [f"{n} {what}" for n, what in ((rejected, "rejected"), (len(self.refused), "refused")) if n]
        if training == "failed" or "failed (`mlplatform retry" in self.training:
            why.append("training failed")
        verdict = f"exit 1: {', '.join(why)}" if why else "all good"
        return (f"{self.pipeline}: {ingested} ingested, {unchanged} unchanged, {rejected} rejected, "
                f"{len(self.refused)} refused; training {training} ({verdict})")


def _failures(result: Any) -> str:  # an ExecuteInProcessResult or the result of execute_job
    checks = [c for c in result.get_asset_check_evaluations() if not c.passed]
    if checks:
        return "; ".join(f"check {c.asset_key.to_user_string()}:{c.check_name} failed: {c.description}" for c in checks)
    steps = [e for e in result.all_events if e.is_step_failure]
    if steps:
        return "; ".join(f"{e.step_key}: {_root_message(e.step_failure_data.error)}" for e in steps)
    # the run failed before any step (e.g. a resource could not start): its own error says why
    runs = [e.event_specific_data.error for e in result.all_events
            if e.is_run_failure and getattr(e.event_specific_data, "error", None) is not None]
    return "; ".join(_root_message(error, bare=True) for error in runs) or "failed"


def _root_message(error: Any, bare: bool = False) -> str:
    """The innermost cause's message (Dagster wraps user errors in an 'Error occurred while executing op');
    `bare`: without the exception's class name in front."""
    while error.cause is not None:
        error = error.cause
    message = error.message.strip().splitlines()[-1] if error.message.strip() else error.cls_name
    return message.removeprefix(f"{error.cls_name}: ") if bare else message


def _ingested(result: dg.ExecuteInProcessResult, spec: Spec) -> str:
    """'ok' with the file's rows: in, valid, quarantined (and where)."""
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        if event.materialization.asset_key == key(spec, "validated") and "rows_in" in meta:
            kept = meta["quarantine"].value if meta["rows_quarantined"].value else ""
            return (f"ok: {meta['rows_in'].value} rows, {meta['rows_valid'].value} valid, "
                    f"{meta['rows_quarantined'].value} quarantined{f' ({kept})' if kept else ''}")
    return "ok"


def _trained(result: dg.ExecuteInProcessResult) -> str:
    """'ok' with the registered model, its headline metric and the gates, when the run trained one."""
    passed = [c.check_name for c in result.get_asset_check_evaluations() if c.asset_key.path[-1] == "evaluation"]
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        if "registered_model" in meta:
            gates = f", gates passed: {', '.join(passed)}" if passed else ""
            served = [f"; {e.materialization.asset_key.path[-1]} serves it at {e.materialization.metadata['url'].value}"
                      for e in result.get_asset_materialization_events()
                      if e.materialization.asset_key.path[-1] in ("staging", "production")]
            metric = next((k for k in meta if k.startswith("holdout_") and k != "holdout_rows"), None)
            headline = f", {metric.replace('_', ' ')} {meta[metric].value:.3f}" if metric else ""
            return f"ok ({meta['registered_model'].value}{headline}{gates}){''.join(served)}"
    return "ok"


def _latest_record(instance: dg.DagsterInstance, spec: Spec, asset: str, partition: str | None) -> Any:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key(spec, asset), asset_partitions=[partition] if partition else None),
        limit=1).records
    return records[0] if records else None




def job_config(job: dg.JobDefinition, run_config: dict[str, Any] | None, log_level: str = "DEBUG") -> dict[str, Any]:
    """The part of a run config (`ops: {<op>: ...}`) that names this job's ops (a config file may hold both jobs'),
    with the console log at `log_level`."""
    ops = (run_config or {}).get("ops") or {}
    names = {node.name for node in job.nodes_in_topological_order}
    loggers = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    return loggers | ({"ops": {k: v for k, v in ops.items() if k in names}} if ops else {})


def check_config(defs: dg.Definitions, spec: Spec, run_config: dict[str, Any] | None) -> None:
    """A run config naming an op of neither the ingest nor the training job is refused, naming it."""
    ops = set((run_config or {}).get("ops") or {})
    known = {n.name for kind in ("ingest", "training")
             for n in defs.resolve_job_def(jobs.job_name(spec.name, kind)).nodes_in_topological_order}
    unknown = sorted(ops - known)
    if unknown:
        raise ValueError(f"run config names op(s) {', '.join(unknown)} that neither job has; known: "
                         f"{', '.join(sorted(known))}")


def _last_training(instance: dg.DagsterInstance, spec: Spec, job: str) -> dg.DagsterRun | None:
    """The newest run that trained `spec`'s model: the training job's, or automation's (the implicit asset job)."""
    model = key(spec, "model")
    runs = [r for name in (job, "__ASSET_JOB") for r in instance.get_run_records(dg.RunsFilter(job_name=name), limit=20)
            if name == job or model in (r.dagster_run.asset_selection or ())]
    return max(runs, key=lambda r: r.create_timestamp).dagster_run if runs else None


def landing_folder(defs: dg.Definitions, spec: Spec) -> Path:
    assert defs.resources is not None
    return defs.resources["landing"].folder(spec)


def sweep_dead_runs(settings: Settings, instance: dg.DagsterInstance) -> list[str]:
    """Runs of this home whose process died, marked failed (their MLflow runs ended as killed)."""
    from mlplatform.orchestration.dead_runs import end_mlflow_runs, sweep

    dead = sweep(instance, settings.run_lock, per_run=settings.production)
    if dead:  # MLflow is imported only then
        end_mlflow_runs(resources(settings)["mlflow"].client(), dead)
    return dead


def ingest_and_train(defs: dg.Definitions, spec: Spec, settings: Settings, only: list[str] | None, train: bool,
                     force: bool = False, run_config: dict[str, Any] | None = None,
                     log_level: str = "DEBUG") -> Outcome:
    """Add landed files as partitions, ingest each new or changed one (a bad one fails alone), then train;
    `run_config` (`ops: {...}`) goes to whichever job has the op it names. `defs`: the project's definitions;
    `log_level`: of the runs' console log (the CLI shows Dagster's events only with --verbose)."""
    check_config(defs, spec, run_config)
    instance = dg.DagsterInstance.get()
    sweep_dead_runs(settings, instance)
    assert defs.resources is not None
    listing = defs.resources["landing"].listing(spec)
    files = {k: p for k, p in listing.files.items() if only is None or k in only}
    parts = cast(str, file_partitions(spec).name)  # a dynamic partitions definition always has its name
    known = set(instance.get_dynamic_partitions(parts))
    instance.add_dynamic_partitions(parts, [k for k in files if k not in known])
    outcome = Outcome(spec.name, refused=listing.refused, ignored=listing.ignored)
    outcome.ok = not outcome.refused
    ingest = defs.resolve_job_def(jobs.job_name(spec.name, "ingest"))
    contract = defs.resolve_assets_def(key(spec, "validated")).code_versions_by_key[key(spec, "validated")]
    for partition, path in files.items():
        status = None if force else freshness.ingested(instance, spec.name, partition, content_hash(path),
                                                        contract)
        if status is None:
            result = ingest.execute_in_process(instance=instance, partition_key=partition, raise_on_error=False,
                                               run_config=job_config(ingest, run_config, log_level))
            status = _ingested(result, spec) if result.success else _failures(result)
            outcome.ok &= result.success
        outcome.ok &= status != freshness.REJECTED
        outcome.partitions[partition] = status
    if only:
        missing = sorted(set(only) - set(files))
        if missing:
            raise ValueError(f"no landed file for partition(s) {', '.join(missing)} in {landing_folder(defs, spec)}")
    trained = _latest_record(instance, spec, "model", None) is not None
    if train and trained and not any(s.startswith("ok") for s in outcome.partitions.values()):
        outcome.training = "unchanged (no partition changed)"
        last = _last_training(instance, spec, jobs.job_name(spec.name, "training"))
        if last is not None and last.status == dg.DagsterRunStatus.FAILURE:  # say so: nothing newer answered it
            outcome.training += f"; the last training run {last.run_id} failed (`mlplatform retry {last.run_id}`)"
            outcome.ok = False
    elif train:
        training = defs.resolve_job_def(jobs.job_name(spec.name, "training"))
        result = training.execute_in_process(instance=instance, raise_on_error=False,
                                             run_config=job_config(training, run_config, log_level))
        outcome.training = _trained(result) if result.success else _failures(result)
        outcome.ok &= result.success
        outcome.trained = result.success
    return outcome


def job_for_reexecution(job_name: str, environ: dict[str, str], project: str) -> dg.JobDefinition:
    """A job rebuilt from the project's pipelines on the settings of the run it re-executes (the reconstructable
    entry point)."""
    from mlplatform.definitions import build_definitions
    from mlplatform.project import specs

    pipelines = specs(Project.at(Path(project)).definitions())
    return build_definitions(pipelines, Settings.from_env(environ)).resolve_job_def(job_name)


def reexecute_from_failure(run_id: str, settings: Settings, instance: dg.DagsterInstance,
                           project: Project) -> tuple[bool, str]:
    """Re-execute a failed run's failed and skipped steps, reusing the outputs of the steps that succeeded."""
    sweep_dead_runs(settings, instance)  # a run whose process was killed is marked failed: it can be retried
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise ValueError(f"no run {run_id!r} in the instance at {instance.root_directory}")
    if run.status != dg.DagsterRunStatus.FAILURE:
        raise ValueError(f"run {run_id} is {run.status.value}, not FAILURE: nothing to re-execute from failure")
    # reconstructable_args is annotated `tuple[object]` (a 1-tuple) but takes any tuple of positional args
    args = (run.job_name, settings.environ(), str(project.root))
    job = dg.build_reconstructable_job("mlplatform.orchestration.runner", "job_for_reexecution",
                                       reconstructable_args=args)  # type: ignore[arg-type]
    options = dg.ReexecutionOptions.from_failure(run_id, instance)
    partition = {k: v for k, v in run.tags.items() if k.startswith("dagster/partition")}  # not carried over else
    with dg.execute_job(job, instance=instance, reexecution_options=options, tags=partition,
                        raise_on_error=False) as result:
        steps = sorted({cast(str, e.step_key) for e in result.all_events if e.is_step_start})  # set on step events
        outcome = "ok" if result.success else _failures(result)
        return result.success, f"run {result.run_id} re-executed {', '.join(steps)}: {outcome}"


def promote(defs: dg.Definitions, spec: Spec, strategy: str, canary_share: float,
            reason: str, log_level: str = "DEBUG") -> tuple[bool, str]:
    """Run the promote job (production takes what staging serves) on the project's instance, visible in the UI."""
    job = defs.resolve_job_def(jobs.job_name(spec.name, "promote"))
    op = defs.resolve_assets_def(key(spec, "production")).op.name  # the asset's op, as Dagster names it
    config = job_config(job, {"ops": {op: {"config": {"strategy": strategy, "canary_share": canary_share,
                                                      "reason": reason}}}}, log_level)
    result = job.execute_in_process(
        instance=dg.DagsterInstance.get(), run_config=config, raise_on_error=False)
    if not result.success:
        return False, f"promotion failed: {_failures(result)}"
    meta = result.get_asset_materialization_events()[-1].materialization.metadata
    serving = cast(dict[str, dict[str, Any]], meta["serving"].value)  # a JSON metadata value: role -> backend
    roles = ", ".join(f"{role} {b['model_version']}" for role, b in serving.items() if role != "primary")
    champion = cast(str, meta["champion"].value)
    return True, (f"production serves {spec.model_name} v{serving['primary']['model_version']} "
                  f"({serving['primary']['bento']}{'; ' + roles if roles else ''}) with {meta['strategy'].value} at "
                  f"{meta['url'].value} (record {meta['record'].value}); "
                  f"champion: {'v' + champion if champion != 'none' else 'none'}")


def observe(spec: Spec, env: str, entry: dict[str, Any]) -> None:
    """Show an operation done outside a run (rollback, strategy change, stop) on the environment's asset page."""
    from mlplatform.assets.deployment import observation

    dg.DagsterInstance.get().report_runless_asset_event(observation(spec, env, entry))
