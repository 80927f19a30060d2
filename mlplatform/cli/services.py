"""Commands of the production profile: bring its services up (`up`) and down (`down`)."""

import typer

from mlplatform.cli._common import app, fail, fail_usage, project
from mlplatform.settings import SettingsError, get_settings


@app.command()
def up() -> None:
    """Production profile (MLPLATFORM_PROFILE=production): make the databases on PostgreSQL, the Dagster instance
    and Feast registry on them, check Redis, then start the MLflow tracking server, the Dagster daemon and UI in the
    background (logs in $MLPLATFORM_HOME/logs). Running it again starts only what is not running."""
    from mlplatform.orchestration.instance import prepare_instance
    from mlplatform.orchestration.services import (
        ServiceError,
        check_redis,
        ensure_databases,
        service_environ,
        services,
        start,
    )

    try:
        settings = get_settings()
    except SettingsError as err:
        fail_usage(err)
    if not settings.production:
        fail_usage(SettingsError("`mlplatform up` brings up the production profile: set MLPLATFORM_PROFILE="
                                 "production (the embedded profile needs nothing running; `mlplatform dev` is its UI)"))
    found = project()
    # taken before Feast is imported: importing it points PROMETHEUS_MULTIPROC_DIR at a temporary folder of this
    # process, gone when it exits, which the services would inherit
    environ = service_environ(settings, found.root)
    try:
        for name in ensure_databases(settings):
            typer.echo(f"created database {name}")
        if settings.feast_online_store == "redis":
            check_redis(settings)
        prepare_instance(settings)
        for service in services(settings, found.module, found.root):
            pid = start(service, settings, environ)
            where = service.health.removesuffix("/health").removesuffix("/server_info") or "(no port)"
            typer.echo(f"{service.name:7} pid {pid:<8} {where:28} log {service.log(settings)}")
    except ServiceError as err:
        fail(err)


@app.command()
def down() -> None:
    """Stop what `mlplatform up` started (the MLflow server, the Dagster daemon and UI); the databases, Redis and
    the deployments stay (`mlplatform stop ENV` stops a deployment)."""
    from mlplatform.orchestration.services import services, stop

    settings = get_settings()
    found = project()
    for service in reversed(services(settings, found.module, found.root)):
        typer.echo(f"{service.name:7} {'stopped' if stop(service, settings) else 'was not running'}")
