"""The production profile's services, brought up and down by `mlplatform up` / `mlplatform down`.

The engines are the team's own and already run: PostgreSQL (`MLPLATFORM_POSTGRES`, password in `PGPASSWORD`) and
Redis (`MLPLATFORM_REDIS`). On them the platform makes its databases (`<prefix>_dagster`, `<prefix>_mlflow`,
`<prefix>_feast`), the Dagster instance's and Feast registry's tables, and starts three processes of its own, each
detached, bound to 127.0.0.1, with its pid in `$MLPLATFORM_HOME/services/` and its log in `$MLPLATFORM_HOME/logs/`:

- `mlflow`: the MLflow tracking server, its backend store on PostgreSQL, artifacts served by it (stored under the
  home); left out when MLFLOW_TRACKING_URI names a server of the team's;
- `daemon`: `dagster-daemon run` (sensors, automation, the run queue with several runs at once);
- `ui`: `dagster-webserver`.
"""

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mlplatform.deploy.processes import alive, cmdline, terminate
from mlplatform.settings import DATABASES, Settings


class ServiceError(RuntimeError):
    """A service could not be reached or started; the message says which and why."""


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    health: str  # the URL answering 200 once the service serves

    def pidfile(self, settings: Settings) -> Path:
        return settings.home / "services" / f"{self.name}.pid"

    def log(self, settings: Settings) -> Path:
        return settings.home / "logs" / f"{self.name}.log"

    def pid(self, settings: Settings) -> int | None:
        """The pid of this service when it runs (a pid file of a process that is gone counts as not running)."""
        try:
            pid = int(self.pidfile(settings).read_text())
        except (OSError, ValueError):
            return None
        # a pid the system gave to another program since (after a reboot) is not this service
        ours = any(Path(self.argv[0]).name.encode() in part for part in cmdline(pid))
        return pid if alive(pid) and ours else None


def services(settings: Settings, module: str, root: Path) -> list[Service]:
    """What `up` starts for the project whose code location is `module` (found from `root`)."""
    bin_dir = Path(sys.executable).parent
    out = []
    if settings.mlflow_server_started_here:
        artifacts = settings.home / "mlflow" / "artifacts"
        out.append(Service("mlflow", [str(bin_dir / "mlflow"), "server", "--host", "127.0.0.1",
                                      "--port", str(settings.mlflow_port), "--workers", "2",
                                      "--backend-store-uri", settings.database_url("mlflow"),
                                      "--serve-artifacts", "--artifacts-destination", artifacts.as_uri()],
                           f"{settings.mlflow_tracking_uri}/health"))
    location = ["-m", module, "-d", str(root)]
    out.append(Service("daemon", [str(bin_dir / "dagster-daemon"), "run", *location], ""))
    out.append(Service("ui", [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(settings.ui_port),
                              *location], f"http://127.0.0.1:{settings.ui_port}/server_info"))
    return out


def ensure_databases(settings: Settings) -> list[str]:
    """Create the profile's databases that do not exist yet; returns the ones created."""
    import psycopg2

    try:
        connection = psycopg2.connect(f"{settings.postgres}/postgres", connect_timeout=10)
    except psycopg2.OperationalError as exc:
        raise ServiceError(f"PostgreSQL at {settings.postgres} (MLPLATFORM_POSTGRES) cannot be reached: "
                           f"{str(exc).strip()}") from None
    created = []
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for store in DATABASES:
                name = f"{settings.database_prefix}_{store}"
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{name}"')  # a checked identifier (Settings)
                    created.append(name)
    finally:
        connection.close()
    return created


def check_redis(settings: Settings) -> None:
    """The online store's Redis answers (`host:port[,db=N]`, Feast's connection string)."""
    import redis

    host_port, *options = settings.redis_connection.split(",")
    host, _, port = host_port.rpartition(":")
    db = next((int(o.split("=", 1)[1]) for o in options if o.startswith("db=")), 0)
    try:
        redis.Redis(host=host or "127.0.0.1", port=int(port or 6379), db=db, socket_timeout=5).ping()
    except redis.RedisError as exc:
        raise ServiceError(f"Redis at {settings.redis_connection} (MLPLATFORM_REDIS) cannot be reached: {exc}"
                           ) from None


def start(service: Service, settings: Settings, environ: dict[str, str], timeout_s: float = 120) -> int:
    """Start `service` detached unless it runs; wait until its health URL answers (the daemon: until it has run
    for a few seconds); a service that exits as it starts is an error quoting its log."""
    running = service.pid(settings)
    if running is not None:
        return running
    for path in (service.pidfile(settings), service.log(settings)):
        path.parent.mkdir(parents=True, exist_ok=True)
    with service.log(settings).open("ab") as log:
        process = subprocess.Popen(service.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=environ, start_new_session=True)
    service.pidfile(settings).write_text(str(process.pid))
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        if process.poll() is not None:
            tail = service.log(settings).read_text(errors="replace")[-2000:]
            raise ServiceError(f"{service.name} exited with status {process.returncode} as it started "
                               f"({service.log(settings)}):\n{tail}")
        # the daemon has no health URL: still running after a few seconds (its code location loaded) is up
        if _healthy(service) or (not service.health and time.monotonic() - started > 5):
            return process.pid
        if time.monotonic() > deadline:
            terminate(process.pid)
            raise ServiceError(f"{service.name} did not answer {service.health} within {timeout_s:.0f} s "
                               f"(log: {service.log(settings)})")
        time.sleep(0.5)


def _healthy(service: Service) -> bool:
    if not service.health:
        return False
    try:
        with urllib.request.urlopen(service.health, timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def stop(service: Service, settings: Settings) -> bool:
    """Stop the service (its whole process group); returns whether it ran."""
    pid = service.pid(settings)
    service.pidfile(settings).unlink(missing_ok=True)
    if pid is None:
        return False
    terminate(pid)
    return True


def service_environ(settings: Settings, root: Path) -> dict[str, str]:
    """The services' environment: this one (PGPASSWORD and the like pass through, never written anywhere), the
    settings, the project, and the libraries' own variables pointing at this home."""
    return {**os.environ, **settings.environ(), "MLPLATFORM_PROJECT": str(root),
            "DAGSTER_HOME": os.environ.get("DAGSTER_HOME", str(settings.dagster_home)),
            "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
            "BENTOML_HOME": os.environ.get("BENTOML_HOME", str(settings.bentoml_home))}
