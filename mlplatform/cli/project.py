"""Commands for projects: make one (`init`), check its pipelines (`validate`)."""

from pathlib import Path
from typing import Annotated

import typer

from mlplatform.cli._common import app, definitions, fail_usage


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Folder of the new project (created; must be new or empty).")],
    pipeline: Annotated[str, typer.Option(help="Name of the example pipeline.")] = "churn",
) -> None:
    """Make a project of your own: pyproject.toml, a package whose definitions load its defs folder, one example
    pipeline (defs/<pipeline>/defs.yaml), the landing folder and a README with the next commands."""
    from mlplatform.components.scaffold import ProjectExists, init_project

    try:
        written = init_project(path, pipeline)
    except ProjectExists as err:
        fail_usage(err)
    root = path.expanduser().resolve()
    yaml_file = next(p for p in written if p.name == "defs.yaml")
    typer.echo(f"made the project {root}\n"
               f"  edit {yaml_file.relative_to(root)} for your data, land files in "
               f"{root / 'landing' / yaml_file.parent.name}/, then:\n"
               f"  cd {root} && mlplatform validate && mlplatform ingest")


@app.command()
def validate() -> None:
    """Load the project's pipelines as Dagster does and say what each declares; a mistake in a defs.yaml is
    named with its file, line and field (exit 2)."""
    from mlplatform.project import specs

    defs = definitions()
    try:
        defs.resolve_asset_graph()
        jobs = sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__"))
    except Exception as err:  # a definition that does not resolve: Dagster's message says which
        fail_usage(err)
    for spec in specs(defs):
        typer.echo(f"{spec.name}: {spec.task}, {len(spec.feature_names)} features, estimator "
                   f"{spec.estimator_name}; jobs {', '.join(j for j in jobs if j.startswith(spec.name + '_'))}")
