"""Commands for runs: reproduce a version, retry a failed run, the loop, the plan, the UI, paths."""

import os
import sys
from typing import Annotated, cast

import typer

from mlplatform.cli._common import PIPELINE_HELP, app, definitions, fail, fail_usage, project, quiet, spec_named
from mlplatform.settings import DATABASES, get_settings


@app.command()
def reproduce(
    version: Annotated[str, typer.Argument(help="Registered model version number, e.g. 3.")],
    spec: Annotated[str | None, typer.Option("--pipeline", "--spec", help=PIPELINE_HELP)] = None,
) -> None:
    """Re-train a registered model version from its recorded training set, params and seed; compare predictions."""
    from mlplatform.definitions import resources
    from mlplatform.lib.training.reproduce import ReproductionError
    from mlplatform.lib.training.reproduce import reproduce as run

    settings = get_settings()
    settings.export()
    chosen, res = spec_named(spec), resources(settings)
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

    from mlplatform.orchestration import runner

    settings = get_settings()
    settings.export()
    try:
        with quiet():
            ok, text = runner.reexecute_from_failure(run_id, settings, dg.DagsterInstance.get(), project())
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
    import dagster as dg

    from mlplatform.orchestration.loop import Loop

    settings = get_settings()
    settings.export()
    with dg.DagsterInstance.get() as instance, quiet() as log_level:
        runner = Loop(definitions(), instance, log=typer.echo,
                      state=settings.dagster_home / "loop-state.json", run_log_level=log_level)
        try:
            runs = runner.settle(max_passes=passes)
        except RuntimeError as err:
            fail(err)
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

    from mlplatform.orchestration import plan as planning
    from mlplatform.partitions import file_partitions
    from mlplatform.project import specs

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    settings = get_settings()
    settings.export()
    defs = definitions()
    assert defs.resources is not None
    # file_partitions() always names its partitions definition
    landed = {cast(str, file_partitions(s).name): list(defs.resources["landing"].files(s)) for s in specs(defs)}
    with dg.DagsterInstance.get() as instance:
        entries = planning.plan(instance, defs.resolve_asset_graph(), landed)
    runs = planning.summary(entries)
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
            typer.echo(f"  {run['job']:26}{parts} {', '.join(run['assets'])}")
    raise typer.Exit(1 if check and entries else 0)


@app.command()
def dev(port: Annotated[int, typer.Option(help="Port of the UI.")] = 3000) -> None:
    """Start the Dagster UI and daemon (sensors, automation) on 127.0.0.1 with this project's instance."""
    from mlplatform.orchestration.instance import prepare_instance

    settings = get_settings()
    if settings.production:  # its daemon and UI run beside the MLflow server, in the background
        fail_usage(ValueError("the production profile's UI and daemon are started by `mlplatform up` (the UI on "
                              f"http://127.0.0.1:{settings.ui_port}); `mlplatform dev` is the embedded profile's"))
    prepare_instance(settings)
    found = project()
    os.execv(sys.executable, [sys.executable, "-m", "dagster", "dev", "-m", found.module, "-d", str(found.root),
                              "-h", "127.0.0.1", "-p", str(port)])


@app.command()
def paths() -> None:
    """Print the environment and where each piece of state lives."""
    s = get_settings()
    found = project()
    rows = {"project": f"{found.root} ({found.module})", "environment": s.env, "home": s.home,
            "landing": s.landing_root, "quarantine": s.quarantine_dir,
            "dagster home": s.dagster_home, "feast": s.feast_dir, "mlflow": s.mlflow_tracking_uri,
            "bentoml home": s.bentoml_home, "feast online store": s.feast_online_store, "profile": s.profile}
    if s.production:
        rows |= {"databases": ", ".join(s.database_url(d).split("/")[-1] for d in DATABASES) + f" on {s.postgres}",
                 "feast registry": s.feast_registry, "redis": s.redis_connection,
                 "runs at once": s.max_concurrent_runs, "ui": f"http://127.0.0.1:{s.ui_port}"}
    for name, value in rows.items():
        typer.echo(f"{name:20} {value}")
