"""Commands for data: demo data into the landing zone, ingestion (then training), the demo."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlplatform.cli._common import PIPELINE_HELP, app, definitions, quiet, spec_named
from mlplatform.settings import get_settings

if TYPE_CHECKING:
    from mlplatform.specs import Spec

DEMO_PIPELINE = "credit"  # the demo data is the credit-default dataset of the checkout's demo project


def demo_spec() -> "Spec":
    """The project's `credit` pipeline: the demo data fits no other."""
    from mlplatform.cli._common import fail_usage

    try:
        return spec_named(DEMO_PIPELINE)
    except typer.BadParameter:
        fail_usage(ValueError(f"the demo data is the credit-default dataset of the checkout's demo project: this "
                              f"project has no `{DEMO_PIPELINE}` pipeline (land your own files instead)"))


@app.command("demo-data")
def demo_data(
    days: Annotated[int, typer.Option(min=1, help="Number of daily files to write.")] = 8,
    rows_per_day: Annotated[int, typer.Option(min=1, help="Rows in each file.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same bytes.")] = 0,
    drift_from: Annotated[int | None,
                          typer.Option(help="From this day (0-based) on, shift features and labels.")] = None,
    corrupt: Annotated[str | None,
                       typer.Option(help="Also write one file with this defect (see --list-corruptions).")] = None,
    file_format: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    list_corruptions: Annotated[bool, typer.Option(help="List the defect kinds and exit.")] = False,
) -> None:
    """Write the demo credit-default dataset into the `credit` pipeline's landing folder, one file per day."""
    from mlplatform.lib.data.demo import CORRUPTIONS, write_demo_data

    if list_corruptions:
        for kind, what in CORRUPTIONS.items():
            typer.echo(f"{kind:18} {what}")
        return
    if file_format not in ("csv", "parquet"):
        raise typer.BadParameter(f"--format {file_format!r}: expected csv or parquet")
    if corrupt is not None and corrupt not in CORRUPTIONS:
        raise typer.BadParameter(f"--corrupt {corrupt!r}: expected one of {', '.join(CORRUPTIONS)}")
    spec = demo_spec()
    folder = get_settings().landing_root / (spec.landing or spec.name)
    paths = write_demo_data(folder, days, rows_per_day, seed, drift_from, corrupt, file_format)
    typer.echo(f"wrote {len(paths)} files to {folder}")


@app.command()
def ingest(
    partition: Annotated[list[str] | None,
                         typer.Option(help="Only these partition keys (default: every landed file).")] = None,
    spec: Annotated[str | None, typer.Option("--pipeline", "--spec", help=PIPELINE_HELP)] = None,
    train: Annotated[bool, typer.Option(help="Run the training job after ingestion.")] = True,
    force: Annotated[bool, typer.Option(help="Re-ingest partitions whose file is unchanged.")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", exists=True, dir_okay=False,
                                                help="Run config YAML (ops: {<op>: {config: ...}}) for the ingest "
                                                     "and training jobs, as `dagster job execute -c` takes.")] = None,
) -> None:
    """Register landed files as partitions and run ingestion for each, then the training job."""
    import yaml

    from mlplatform.orchestration import runner

    settings = get_settings()
    settings.export()
    run_config = yaml.safe_load(config.read_text()) if config else None
    if run_config is not None and not isinstance(run_config, dict):
        raise typer.BadParameter(f"{config}: expected a mapping with `ops:`", param_hint="--config")
    chosen = spec_named(spec)
    try:
        with quiet() as log_level:
            outcome = runner.ingest_and_train(definitions(), chosen, settings, partition or None, train, force,
                                              run_config, log_level)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--config" if "run config" in str(err) else "--partition") \
            from err
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
    from mlplatform.orchestration import runner

    with quiet() as log_level:
        outcome = runner.ingest_and_train(definitions(), demo_spec(), settings, None, True,
                                          log_level=log_level)
    typer.echo(outcome.report())
    typer.echo(f"\nAll state is under {settings.home}. Next:\n"
               f"  make dev       # Dagster UI and daemon on http://127.0.0.1:3000"
               f" (= DAGSTER_HOME={settings.dagster_home}"
               f" dagster dev -w workspace.yaml)\n"
               f"  .venv/bin/mlplatform demo-data --days {days} --rows-per-day {rows_per_day} --corrupt nan"
               f" && .venv/bin/mlplatform ingest   # land a bad file: it is quarantined and gated,"
               f" the rest is unchanged\n"
               f"  ls {settings.quarantine_dir}   # rejected rows and files\n"
               f"  ls {settings.home / 'artifacts' / 'reports'}/*/*"
               f"   # evaluation report.html and model_card.md per version\n"
               f"  .venv/bin/mlplatform reproduce 1   # re-train version 1 from its recorded inputs,"
               f" compare predictions\n"
               f"  .venv/bin/mlplatform status        # what serves where"
               f" (staging: http://127.0.0.1:{settings.staging_port},"
               f" API key in {settings.deployments_dir / 'staging' / 'api-keys'}; curl example in README.md)\n"
               f"  .venv/bin/mlplatform promote       # staging's version to production (http://127.0.0.1:"
               f"{settings.production_port}), as champion\n"
               f"  .venv/bin/mlplatform stop staging  # stop serving"
               f" (`mlplatform serve --env staging` starts it again)")
    raise typer.Exit(0 if outcome.ok else 1)
