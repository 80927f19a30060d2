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
               f"  .venv/bin/mlplatform reproduce 1   # re-train version 1 from its recorded inputs, compare predictions")
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
