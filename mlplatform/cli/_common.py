"""What the commands share: the app and its global options, the project and its pipelines, the deployer of
this home, error exits (1: something was refused or failed; 2: a usage or configuration error)."""

import contextlib
import io
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import click
import typer

from mlplatform.project import Project, ProjectError
from mlplatform.settings import get_settings

if TYPE_CHECKING:
    import dagster as dg

    from mlplatform.deploy.deployer import Deployer
    from mlplatform.specs import Spec

app = typer.Typer(help="mlplatform: landed data to validated features, models and served Bentos, on Dagster.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False)
ENV_HELP = "staging or production."
PIPELINE_HELP = "Pipeline name (default: the project's only pipeline)."
_state: dict[str, Project | ProjectError | bool] = {}


@app.callback()
def main(
    ctx: typer.Context,
    project: Annotated[Path | None, typer.Option(
        envvar="MLPLATFORM_PROJECT", file_okay=False,
        help="The project folder (default: the one around the working directory).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Dagster's own event log.")] = False,
) -> None:
    """Find the project before any command reads its settings (its home is `<project>/.mlplatform`)."""
    _state["verbose"] = verbose
    if ctx.invoked_subcommand == "init":  # makes a project: needs none (a stale MLPLATFORM_PROJECT does not matter)
        return
    if not verbose:  # Dagster's notes on its own beta APIs are not the user's business (matched without importing it)
        warnings.filterwarnings("ignore", message=r".* is currently in beta")
    try:
        found = Project.at(project) if project is not None else Project.find()
    except ProjectError as err:
        if project is not None:
            raise typer.BadParameter(str(err), param_hint="--project") from err
        _state["project"] = err  # a command that needs a project says so (`init` does not)
        return
    found.activate()
    _state["project"] = found


def verbose() -> bool:
    return bool(_state.get("verbose"))


@contextmanager
def quiet() -> Iterator[str]:
    """Runs speak through the command's own lines: Dagster's event log, library warnings and chatter are hidden
    unless --verbose (then they go to stderr as usual). Yields the runs' console log level. What was hidden is
    shown if the command fails unexpectedly."""
    if verbose():
        yield "DEBUG"
        return
    import logging

    hidden = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(hidden):
        warnings.simplefilter("ignore")
        for name in ("mlflow", "alembic", "bentoml", "feast"):
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            yield "CRITICAL"
        except (typer.Exit, click.exceptions.ClickException):
            raise
        except BaseException:
            print(hidden.getvalue(), file=sys.__stderr__, end="")
            raise


def project() -> Project:
    found = _state.get("project")
    if not isinstance(found, Project):
        fail_usage(found if isinstance(found, ProjectError) else ProjectError("no project"))
    return found


@cache
def definitions() -> "dg.Definitions":
    """The project's definitions, as its code location loads them (a YAML mistake is a usage error)."""
    found = project()
    try:
        return found.definitions()
    except Exception as err:  # Dagster wraps what a component raises: its message names file:line
        fail_usage(err)


def spec_named(name: str | None) -> "Spec":
    """The project's pipeline of that name (default: its only one)."""
    from mlplatform.project import specs

    found = specs(definitions())
    names = ", ".join(s.name for s in found) or "none"
    if name is None:
        if len(found) == 1:
            return found[0]
        raise typer.BadParameter(f"the project has {len(found)} pipelines ({names}): name one",
                                 param_hint="--pipeline")
    for spec in found:
        if spec.name == name:
            return spec
    raise typer.BadParameter(f"unknown pipeline {name!r}; the project has: {names}", param_hint="--pipeline")


def env_deployer() -> "Deployer":
    """The deployer of this home (its settings exported for the child processes)."""
    from mlplatform.definitions import resources

    settings = get_settings()
    settings.export()
    return resources(settings)["deployment"].deployer()


def check_env(env: str) -> str:
    from mlplatform.deploy.records import ENVIRONMENTS

    if env not in ENVIRONMENTS:
        raise typer.BadParameter(f"{env!r}: expected one of {', '.join(ENVIRONMENTS)}", param_hint="ENV")
    return env


def fail(err: Exception) -> NoReturn:
    typer.echo(f"error: {err}", file=sys.__stderr__)  # not sys.stderr: inside quiet() that is a hidden buffer
    raise typer.Exit(1)


def fail_usage(err: Exception) -> NoReturn:
    """A usage or configuration error (no project, a bad defs.yaml): exit 2, saying the innermost cause first
    (Dagster wraps what a component raises in errors that name only where it was loading)."""
    messages: list[str] = []
    cause: BaseException | None = err
    while cause is not None and len(messages) < 10:
        text = str(cause).strip()
        if text and text not in messages:
            messages.append(text)
        cause = cause.__cause__ or cause.__context__
    # a message another one repeats (a spec's check inside the message naming its file and line) is said once
    kept = [m for m in messages if not any(m != other and m in other for other in messages)]
    typer.echo("error: " + "\n".join(reversed(kept)), file=sys.__stderr__)
    raise typer.Exit(2)
