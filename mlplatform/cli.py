"""The `mlplatform` console script."""

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlplatform.settings import get_settings

app = typer.Typer(help="mlplatform: landed data to validated features, models and served Bentos, on Dagster.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False)


def _spec(name: str | None):  # noqa: ANN202 - returns a Spec; importing it eagerly slows --help
    from mlplatform.specs import SPECS

    if name is None:
        return SPECS[0]
    for spec in SPECS:
        if spec.name == name:
            return spec
    raise typer.BadParameter(f"unknown spec {name!r}; known: {', '.join(s.name for s in SPECS)}")


@app.command("demo-data")
def demo_data(
    days: Annotated[int, typer.Option(min=1, help="Number of daily files to write.")] = 8,
    rows_per_day: Annotated[int, typer.Option(min=1, help="Rows in each file.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same bytes.")] = 0,
    drift_from: Annotated[Optional[int], typer.Option(help="From this day (0-based) on, shift features and labels.")] = None,
    corrupt: Annotated[Optional[str], typer.Option(help="Also write one file with this defect (see --list-corruptions).")] = None,
    file_format: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    list_corruptions: Annotated[bool, typer.Option(help="List the defect kinds and exit.")] = False,
) -> None:
    """Write the demo credit-default dataset into the landing zone, one file per day."""
    from mlplatform.lib.demo_data import CORRUPTIONS, write_demo_data

    if list_corruptions:
        for kind, what in CORRUPTIONS.items():
            typer.echo(f"{kind:18} {what}")
        return
    if file_format not in ("csv", "parquet"):
        raise typer.BadParameter(f"--format {file_format!r}: expected csv or parquet")
    if corrupt is not None and corrupt not in CORRUPTIONS:
        raise typer.BadParameter(f"--corrupt {corrupt!r}: expected one of {', '.join(CORRUPTIONS)}")
    spec = _spec(None)
    folder = get_settings().landing_root / (spec.landing or spec.name)
    paths = write_demo_data(folder, days, rows_per_day, seed, drift_from, corrupt, file_format)
    typer.echo(f"wrote {len(paths)} files to {folder}")


@app.command()
def ingest(
    partition: Annotated[Optional[list[str]], typer.Option(help="Only these partition keys (default: every landed file).")] = None,
    spec: Annotated[Optional[str], typer.Option(help="Spec name (default: the first spec).")] = None,
    train: Annotated[bool, typer.Option(help="Run the training job after ingestion.")] = True,
    force: Annotated[bool, typer.Option(help="Re-ingest partitions whose file is unchanged.")] = False,
) -> None:
    """Register landed files as partitions and run ingestion for each, then the training job."""
    from mlplatform import runner

    settings = get_settings()
    settings.export()
    try:
        outcome = runner.ingest_and_train(_spec(spec), settings, partition or None, train, force)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--partition") from err
    typer.echo(outcome.report())
    raise typer.Exit(0 if outcome.ok else 1)


@app.command()
def demo(
    days: Annotated[int, typer.Option(min=2, help="Days of demo data.")] = 8,
    rows_per_day: Annotated[int, typer.Option(min=50, help="Rows per day.")] = 2000,
) -> None:
    """Write demo data, ingest every file and build the training set, then say where to look."""
    demo_data(days=days, rows_per_day=rows_per_day, seed=0, drift_from=None, corrupt=None, file_format="csv",
              list_corruptions=False)
    settings = get_settings()
    settings.export()
    from mlplatform import runner

    outcome = runner.ingest_and_train(_spec(None), settings, None, True)
    typer.echo(outcome.report())
    typer.echo(f"\nAll state is under {settings.home}. Next:\n"
               f"  make dev       # Dagster UI and daemon on http://127.0.0.1:3000 (= DAGSTER_HOME={settings.dagster_home}"
               f" dagster dev -w workspace.yaml)\n"
               f"  .venv/bin/mlplatform demo-data --days {days} --rows-per-day {rows_per_day} --corrupt nan"
               f" && .venv/bin/mlplatform ingest   # land a bad file: it is quarantined and gated, the rest is unchanged\n"
               f"  ls {settings.quarantine_dir}   # rejected rows and files\n"
               f"  ls {settings.home / 'artifacts' / 'reports'}/*/*   # evaluation report.html and model_card.md per version\n"
               f"  .venv/bin/mlplatform reproduce 1   # re-train version 1 from its recorded inputs, compare predictions\n"
               f"  .venv/bin/mlplatform status        # what serves where (staging: http://127.0.0.1:{settings.staging_port},"
               f" API key in {settings.deployments_dir / 'staging' / 'api-keys'}; curl example in README.md)\n"
               f"  .venv/bin/mlplatform promote       # staging's version to production (http://127.0.0.1:"
               f"{settings.production_port}), as champion\n"
               f"  .venv/bin/mlplatform stop staging  # stop serving (`mlplatform serve --env staging` starts it again)")
    raise typer.Exit(0 if outcome.ok else 1)


@app.command()
def reproduce(
    version: Annotated[str, typer.Argument(help="Registered model version number, e.g. 3.")],
    spec: Annotated[Optional[str], typer.Option(help="Spec name (default: the first spec).")] = None,
) -> None:
    """Re-train a registered model version from its recorded training set, params and seed; compare predictions."""
    from mlplatform.definitions import resources
    from mlplatform.lib.reproduce import ReproductionError, reproduce as run

    settings = get_settings()
    settings.export()
    chosen, res = _spec(spec), resources(settings)
    try:
        outcome = run(res["mlflow"].client(), settings.mlflow_tracking_uri, chosen, version,
                      lambda data_version: res["artifacts"].snapshot(chosen, data_version))
    except ReproductionError as err:
        raise typer.BadParameter(str(err), param_hint="VERSION") from err
    typer.echo(outcome.report())
    raise typer.Exit(0 if outcome.identical else 1)


@app.command()
def retry(run_id: Annotated[str, typer.Argument(help="Id of a failed Dagster run.")]) -> None:
    """Re-execute a failed run from failure: only failed and skipped steps run, on the earlier steps' outputs."""
    import dagster as dg

    from mlplatform import runner

    settings = get_settings()
    settings.export()
    try:
        ok, text = runner.reexecute_from_failure(run_id, settings, dg.DagsterInstance.get())
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="RUN_ID") from err
    typer.echo(text)
    raise typer.Exit(0 if ok else 1)


@app.command()
def loop(
    passes: Annotated[int, typer.Option(min=1, help="At most this many passes over sensors and automation.")] = 12,
) -> None:
    """The daemon's work in this process, until nothing more is asked: landing, retraining and rollback sensors,
    then automation, run by run. With MLPLATFORM_RETRAINING=on_trigger only the retrain sensor trains (persistent
    drift, live performance below its floor); `dagster-daemon` (or `mlplatform dev`) runs the same continuously."""
    import warnings

    import dagster as dg

    from mlplatform.definitions import build_definitions
    from mlplatform.loop import Loop
    from mlplatform.specs import SPECS

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    settings = get_settings()
    settings.export()
    with dg.DagsterInstance.get() as instance:
        runner = Loop(build_definitions(SPECS, settings), instance, log=typer.echo,
                      state=settings.dagster_home / "loop-state.json", run_log_level="WARNING")
        try:
            runs = runner.settle(max_passes=passes)
        except RuntimeError as err:
            _fail(err)
        for run in runs:
            if "mlplatform/reason" in run.tags:
                typer.echo(f"{run.tags['mlplatform/trigger']}: {run.tags['mlplatform/reason']}")
    failed = [r for r in runs if not r.ok]
    typer.echo(f"settled: {len(runs)} runs, {len(failed)} failed")
    raise typer.Exit(1 if failed else 0)


@app.command()
def plan(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    check: Annotated[bool, typer.Option(help="CI mode: exit 1 when anything would rebuild.")] = False,
) -> None:
    """What is stale and why (never materialized, new partition, code version changed, upstream data changed),
    and which jobs and partitions would run. Reads the instance of $DAGSTER_HOME (point it at the platform's
    own, e.g. its Postgres storage, to see what a pull request would rebuild); changes nothing."""
    import json
    import warnings

    import dagster as dg

    from mlplatform import lineage
    from mlplatform.definitions import build_definitions
    from mlplatform.partitions import landed_files
    from mlplatform.specs import SPECS

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    settings = get_settings()
    settings.export()
    defs = build_definitions(SPECS, settings)
    landed = {landed_files(s).name: list(defs.resources["landing"].files(s)) for s in SPECS}
    with dg.DagsterInstance.get() as instance:
        entries = lineage.plan(instance, defs.resolve_asset_graph(), landed, SPECS[0].name)
    runs = lineage.summary(entries)
    if as_json:
        typer.echo(json.dumps({"stale": [e.as_dict() for e in entries], "runs": runs}, indent=2))
    elif not entries:
        typer.echo("everything is fresh: nothing would rebuild")
    else:
        typer.echo(f"{len(entries)} asset partitions would rebuild:")
        for e in entries:
            where = f"[{e.partition}]" if e.partition else ""
            typer.echo(f"  {e.asset + where:44} {'; '.join(e.reasons)}")
        typer.echo("would run:")
        for run in runs:
            parts = f" partitions {', '.join(run['partitions'])}:" if run["partitions"] else ":"
            typer.echo(f"  {run['job']:16}{parts} {', '.join(run['assets'])}")
    raise typer.Exit(1 if check and entries else 0)


@app.command()
def dev(port: Annotated[int, typer.Option(help="Port of the UI.")] = 3000) -> None:
    """Start the Dagster UI and daemon (sensors, automation) on 127.0.0.1 with this project's instance."""
    settings = get_settings()
    settings.export()
    workspace = Path(__file__).resolve().parent.parent / "workspace.yaml"
    dagster = Path(sys.executable).with_name("dagster")
    os.execv(str(dagster), [str(dagster), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)])


@app.command()
def paths() -> None:
    """Print the environment and where each piece of state lives."""
    s = get_settings()
    rows = {"environment": s.env, "home": s.home, "landing": s.landing_root, "quarantine": s.quarantine_dir,
            "dagster home": s.dagster_home, "feast": s.feast_dir, "mlflow": s.mlflow_tracking_uri,
            "bentoml home": s.bentoml_home, "feast online store": s.feast_online_store}
    for name, value in rows.items():
        typer.echo(f"{name:20} {value}")


# --- deployment -------------------------------------------------------------------------------------------------
ENV_HELP = "staging or production."


def _deployer():  # noqa: ANN202 - a lib.deployer.Deployer
    from mlplatform.definitions import resources

    settings = get_settings()
    settings.export()
    return resources(settings)["deployment"].deployer()


def _check_env(env: str) -> str:
    from mlplatform.lib.deployment import ENVIRONMENTS

    if env not in ENVIRONMENTS:
        raise typer.BadParameter(f"{env!r}: expected one of {', '.join(ENVIRONMENTS)}", param_hint="ENV")
    return env


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(1)


@app.command()
def serve(
    env: Annotated[str, typer.Option(help="local (the newest Bento, in the foreground), staging or production.")] = "local",
    port: Annotated[int, typer.Option(help="Port for --env local.")] = 3000,
    recover: Annotated[bool, typer.Option(help="Serve the last valid record again (record.json lost or damaged).")] = False,
) -> None:
    """Serve: staging/production are (re)started from their deployment record behind their router; local runs the
    newest Bento in the foreground."""
    from mlplatform.lib.deployment import DeploymentError

    if env == "local":
        settings = get_settings()
        settings.export()
        bentos = sorted((settings.bentoml_home / "bentos").glob("*/*/bento.yaml"), key=lambda p: p.stat().st_mtime)
        if not bentos:
            _fail(RuntimeError(f"no Bento under {settings.bentoml_home}: run `mlplatform demo` or the training job"))
        bentoml = Path(sys.executable).with_name("bentoml")
        os.execv(str(bentoml), [str(bentoml), "serve", str(bentos[-1].parent), "--host", "127.0.0.1",
                                "--port", str(port)])
    deployer = _deployer()
    try:
        (deployer.recover if recover else deployer.ensure_running)(_check_env(env))
    except DeploymentError as err:
        _fail(err)
    _print_status(deployer.status(env))


def _print_status(s: dict) -> None:
    problem = f"  PROBLEM: {s['problem']}" if s["problem"] else ""
    typer.echo(f"{s['env']:11} {s['url']}  router {s['router']}{problem}")
    if s.get("deployed", True) is None:
        typer.echo("            nothing deployed")
        return
    typer.echo(f"            record {s['sequence']}, {s['strategy']}"
               + (f" ({s['canary_share']:.0%} to the candidate)" if s["strategy"] == "canary" else "")
               + f", since {s['since']} by {s['by']}: {s['reason']}")
    for b in s["backends"]:
        typer.echo(f"            {b['role']:9} {b['model']} v{b['model_version']}  {b['bento']}  port {b['port']}"
                   f"  {'up' if b['up'] else 'DOWN'}")
    typer.echo(f"            API keys: {s['api_keys_file']} (header x-api-key)")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """What serves where: per environment the router, the record, the strategy and each backend's version."""
    import json

    deployer = _deployer()
    states = [deployer.status(env) for env in ("staging", "production")]
    if as_json:
        typer.echo(json.dumps(states, indent=2))
        return
    for state in states:
        _print_status(state)


@app.command()
def promote(
    strategy: Annotated[str, typer.Option(help="blue_green (all traffic, becomes champion), canary or shadow.")] = "blue_green",
    canary_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of entities for a canary.")] = 0.1,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
    spec: Annotated[Optional[str], typer.Option(help="Spec name (default: the first spec).")] = None,
) -> None:
    """Promote what staging serves to production (runs the promote job); blue/green moves the `champion` alias."""
    from mlplatform import runner

    if strategy not in ("blue_green", "canary", "shadow"):
        raise typer.BadParameter(f"{strategy!r}: expected blue_green, canary or shadow", param_hint="--strategy")
    settings = get_settings()
    settings.export()
    ok, text = runner.promote(_spec(spec), settings, strategy, canary_share, reason)
    typer.echo(text, err=not ok)
    raise typer.Exit(0 if ok else 1)


@app.command()
def rollback(
    env: Annotated[str, typer.Argument(help=ENV_HELP)],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
    spec: Annotated[Optional[str], typer.Option(help="Spec name (default: the first spec).")] = None,
) -> None:
    """Serve the environment's previous deployment again; in production its version gets the `champion` alias back."""
    from mlplatform import runner
    from mlplatform.definitions import resources
    from mlplatform.lib import promotion
    from mlplatform.lib.deployment import DeploymentError

    deployer, chosen = _deployer(), _spec(spec)
    try:
        record = promotion.rollback(deployer, resources(get_settings())["mlflow"].client(), chosen, _check_env(env),
                                    reason)
    except DeploymentError as err:
        _fail(err)
    runner.observe(chosen, env, deployer.deployments.audit_entries(env)[-1])
    typer.echo(f"{env} serves {record.primary.model} v{record.primary.model_version} again (record {record.sequence})")


@app.command()
def audit(
    env: Annotated[Optional[str], typer.Option(help="Only this environment.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="The newest N entries.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The audit log: every deployment, promotion, rollback and strategy change (who, when, why, from/to)."""
    import json

    entries = _deployer().deployments.audit_entries(_check_env(env) if env else None)[-limit:]
    for e in entries:
        if as_json:
            typer.echo(json.dumps(e, sort_keys=True))
            continue
        version = lambda side: f"v{side['model_version']}" if side else "—"  # noqa: E731
        champion = f"  champion {e['champion']['from'] or '—'} → {e['champion']['to']}" if e.get("champion") else ""
        typer.echo(f"{e['at']}  {e['env']:10} {e['action']:18} {version(e['from']):>4} → {version(e['to']):<4} "
                   f"by {e['who']}{champion}: {e['reason']}")


@app.command()
def stop(env: Annotated[str, typer.Argument(help=ENV_HELP)]) -> None:
    """Stop the environment's router and backends (the record stays: `mlplatform serve --env ENV` restarts them)."""
    _deployer().stop_env(_check_env(env))
    typer.echo(f"{env} stopped")
