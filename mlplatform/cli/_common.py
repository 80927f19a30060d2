"""What the commands share: the app, spec lookup, the deployer of this home, error exits."""

from typing import TYPE_CHECKING, NoReturn

import typer

from mlplatform.settings import get_settings

if TYPE_CHECKING:
    from mlplatform.deploy.deployer import Deployer
    from mlplatform.specs import Spec

app = typer.Typer(help="mlplatform: landed data to validated features, models and served Bentos, on Dagster.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False)
ENV_HELP = "staging or production."


def spec_named(name: str | None) -> "Spec":
    """The spec of that name (default: the first); imported here, not at the top, so `--help` stays fast."""
    from mlplatform.specs import SPECS

    if name is None:
        return SPECS[0]
    for spec in SPECS:
        if spec.name == name:
            return spec
    raise typer.BadParameter(f"unknown spec {name!r}; known: {', '.join(s.name for s in SPECS)}")


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
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(1)
