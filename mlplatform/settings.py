"""Environments, paths and the profile, read once from environment variables.

All state of the embedded profile (the default) lives under one folder, `$MLPLATFORM_HOME` (default
`./.mlplatform`). The production profile (`MLPLATFORM_PROFILE=production`) keeps files there too (asset values,
artifacts, the offline features, Bentos) but runs on existing engines: Dagster's and MLflow's stores and Feast's
registry on PostgreSQL, Feast's online store on Redis, an MLflow tracking server, runs in parallel.
"""

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

# Where the `mlplatform` package sits: the checkout (with bentos/, feature_repo/ and the lock file next to it), or
# the site-packages folder of an installed platform.
PROJECT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("local", "staging", "production")
ONLINE_STORES = ("sqlite", "redis")
PROMOTION_POLICIES = ("manual", "automatic")
RETRAINING_POLICIES = ("on_new_data", "on_trigger")
PROFILES = ("embedded", "production")
# The databases of the production profile on its PostgreSQL server, each `<prefix>_<store>`
DATABASES = ("dagster", "mlflow", "feast")


PRIVATE_UMASK = 0o027  # what the platform creates: the owner reads and writes, its group reads, others nothing


def protect_created_files() -> None:
    """Files and folders this process creates are not world-readable: quarantined rows, asset values, reports and
    logs hold the landed data. Called when the code location loads and by every command."""
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)


class SettingsError(ValueError):
    """An environment variable holds a value the platform cannot use."""


@dataclass(frozen=True)
class Settings:
    """Resolved configuration for one process."""

    env: str
    home: Path
    landing_root: Path
    feast_online_store: str = "sqlite"
    redis_connection: str = "127.0.0.1:6379"
    mlflow_uri: str | None = None
    promotion: str = "manual"  # manual: production changes by `mlplatform promote`; automatic: after staging
    # on_new_data: automation retrains whenever labels land; on_trigger: only the retrain sensor (or a person) does
    retraining: str = "on_new_data"
    staging_port: int = 3100
    production_port: int = 3200
    # seconds between the daemon's automation evaluations: an ingested file waits up to this long before its
    # drift run and the training chain are asked for; each evaluation costs about half a second of CPU
    automation_interval: int = 10
    # seconds a run waits for another run of this home to end (the embedded stores are single-writer) before failing
    run_lock_timeout: int = 1800
    profile: str = "embedded"
    # production: the PostgreSQL server (no database, no password: libpq reads it from PGPASSWORD) and the prefix of
    # its databases (`<prefix>_dagster`, `<prefix>_mlflow`, `<prefix>_feast`; also the Feast project's name)
    postgres: str = "postgresql://postgres@127.0.0.1:5432"
    database_prefix: str = "mlplatform"
    mlflow_port: int = 5000  # production: the MLflow server `mlplatform up` starts (unless MLFLOW_TRACKING_URI)
    ui_port: int = 3000
    max_concurrent_runs: int = 1  # the embedded profile's stores take one run at a time

    @property
    def production(self) -> bool:
        return self.profile == "production"

    def database_url(self, store: str) -> str:
        """The SQLAlchemy URL of one of the production profile's databases, on psycopg2 (SQLAlchemy 2.1's default
        PostgreSQL driver is psycopg 3, whose server-side parameters Dagster's queries do not take)."""
        return f"postgresql+psycopg2://{self.postgres.split('://', 1)[1]}/{self.database_prefix}_{store}"

    @property
    def feast_project(self) -> str:
        """Feast's project: its registry rows and online keys are named by it (a shared Redis keeps homes apart)."""
        return self.database_prefix if self.production else "mlplatform"

    @property
    def feast_registry(self) -> str:
        """Production: Feast's SQL registry on PostgreSQL (SQLAlchemy URL); embedded: empty (a file in feast_dir)."""
        return self.database_url("feast") if self.production else ""


    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def run_lock(self) -> Path:
        """Embedded: the file every run of this home holds for as long as it lives (runs of one home never overlap).
        Production: the folder where each run holds a lock file of its own (`<run id>.lock`), runs in parallel."""
        return self.home / "runs" if self.production else self.home / ".run.lock"

    @property
    def io_dir(self) -> Path:
        return self.home / "dagster" / "storage"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def mlflow_tracking_uri(self) -> str:
        if self.mlflow_uri:
            return self.mlflow_uri
        if self.production:
            return f"http://127.0.0.1:{self.mlflow_port}"
        return f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_server_started_here(self) -> bool:
        """Whether `mlplatform up` runs the tracking server (production, no MLFLOW_TRACKING_URI of another)."""
        return self.production and not self.mlflow_uri

    @property
    def bentoml_home(self) -> Path:
        return self.home / "bentoml"

    @property
    def deployments_dir(self) -> Path:
        return self.home / "deployments"

    @property
    def ports(self) -> dict[str, int]:
        return {"staging": self.staging_port, "production": self.production_port}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from `environ` (default: the process environment)."""
        environ = os.environ if environ is None else environ
        env = environ.get("MLPLATFORM_ENV", "local")
        if env not in ENVIRONMENTS:
            raise SettingsError(f"MLPLATFORM_ENV={env!r}: expected one of {', '.join(ENVIRONMENTS)}")
        if env != "local" and not environ.get("MLPLATFORM_HOME"):
            raise SettingsError(f"MLPLATFORM_ENV={env}: set MLPLATFORM_HOME explicitly outside local")
        home = Path(environ.get("MLPLATFORM_HOME", ".mlplatform")).expanduser().resolve()
        landing = Path(environ.get("MLPLATFORM_LANDING", home / "landing")).expanduser().resolve()
        profile = _choice(environ, "MLPLATFORM_PROFILE", "embedded", PROFILES)
        production = profile == "production"
        online = _choice(environ, "MLPLATFORM_FEAST_ONLINE_STORE", "redis" if production else "sqlite", ONLINE_STORES)
        promotion = _choice(environ, "MLPLATFORM_PROMOTION", "manual", PROMOTION_POLICIES)
        retraining = _choice(environ, "MLPLATFORM_RETRAINING", "on_new_data", RETRAINING_POLICIES)
        ports = {}
        for name, default in (("staging", 3100), ("production", 3200), ("mlflow", 5000), ("ui", 3000)):
            raw = environ.get(f"MLPLATFORM_{name.upper()}_PORT", str(default))
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise SettingsError(f"MLPLATFORM_{name.upper()}_PORT={raw!r}: expected a port number (1-65535)")
            ports[name] = int(raw)
        postgres = _postgres_server(environ.get("MLPLATFORM_POSTGRES", cls.postgres))
        prefix = environ.get("MLPLATFORM_DATABASE_PREFIX", cls.database_prefix)
        if not prefix.isidentifier() or prefix != prefix.lower() or len(prefix) > 40:
            raise SettingsError(f"MLPLATFORM_DATABASE_PREFIX={prefix!r}: expected a lowercase name of letters, "
                                "digits and _ (at most 40), not starting with a digit")
        runs = environ.get("MLPLATFORM_MAX_CONCURRENT_RUNS", "4" if production else "1")
        if not runs.isdigit() or not 1 <= int(runs) <= 64:
            raise SettingsError(f"MLPLATFORM_MAX_CONCURRENT_RUNS={runs!r}: expected a whole number (1-64)")
        if not production and int(runs) != 1:
            raise SettingsError(f"MLPLATFORM_MAX_CONCURRENT_RUNS={runs}: the embedded profile's stores are "
                                "single-writer sqlite files, one run at a time (MLPLATFORM_PROFILE=production runs "
                                "several)")
        lock = environ.get("MLPLATFORM_RUN_LOCK_TIMEOUT", str(cls.run_lock_timeout))
        if not lock.isdigit():
            raise SettingsError(f"MLPLATFORM_RUN_LOCK_TIMEOUT={lock!r}: expected whole seconds")
        interval = environ.get("MLPLATFORM_AUTOMATION_INTERVAL", str(cls.automation_interval))
        if not interval.isdigit() or not 1 <= int(interval) <= 86400:
            raise SettingsError(f"MLPLATFORM_AUTOMATION_INTERVAL={interval!r}: expected whole seconds (1-86400)")
        return cls(
            env=env,
            home=home,
            landing_root=landing,
            feast_online_store=online,
            redis_connection=environ.get("MLPLATFORM_REDIS", "127.0.0.1:6379"),
            mlflow_uri=environ.get("MLFLOW_TRACKING_URI"),
            promotion=promotion,
            retraining=retraining,
            staging_port=ports["staging"],
            production_port=ports["production"],
            automation_interval=int(interval),
            run_lock_timeout=int(lock),
            profile=profile,
            postgres=postgres,
            database_prefix=prefix,
            mlflow_port=ports["mlflow"],
            ui_port=ports["ui"],
            max_concurrent_runs=int(runs),
        )

    def environ(self) -> dict[str, str]:
        """The environment variables that rebuild exactly these settings (e.g. in a re-executed run)."""
        env = {"MLPLATFORM_ENV": self.env, "MLPLATFORM_HOME": str(self.home),
               "MLPLATFORM_LANDING": str(self.landing_root),
               "MLPLATFORM_FEAST_ONLINE_STORE": self.feast_online_store, "MLPLATFORM_REDIS": self.redis_connection,
               "MLPLATFORM_PROMOTION": self.promotion, "MLPLATFORM_RETRAINING": self.retraining,
               "MLPLATFORM_STAGING_PORT": str(self.staging_port),
               "MLPLATFORM_PRODUCTION_PORT": str(self.production_port),
               "MLPLATFORM_AUTOMATION_INTERVAL": str(self.automation_interval),
               "MLPLATFORM_RUN_LOCK_TIMEOUT": str(self.run_lock_timeout),
               "MLPLATFORM_PROFILE": self.profile, "MLPLATFORM_POSTGRES": self.postgres,
               "MLPLATFORM_DATABASE_PREFIX": self.database_prefix, "MLPLATFORM_MLFLOW_PORT": str(self.mlflow_port),
               "MLPLATFORM_UI_PORT": str(self.ui_port),
               "MLPLATFORM_MAX_CONCURRENT_RUNS": str(self.max_concurrent_runs)}
        return env | ({"MLFLOW_TRACKING_URI": self.mlflow_uri} if self.mlflow_uri else {})

    def export(self) -> None:
        """Point the libraries' own env vars (Dagster, BentoML, MLflow) at this home unless already set."""
        protect_created_files()
        os.environ.setdefault("DAGSTER_HOME", str(self.dagster_home))
        os.environ.setdefault("BENTOML_HOME", str(self.bentoml_home))
        os.environ.setdefault("MLFLOW_TRACKING_URI", self.mlflow_tracking_uri)
        dagster_home = Path(os.environ["DAGSTER_HOME"])
        dagster_home.mkdir(parents=True, exist_ok=True)
        config = dagster_home / "dagster.yaml"
        text = self.dagster_yaml()
        # a file of the user's (without the platform's first line) is left alone; the platform's follows the settings
        if not config.exists() or (config.read_text().startswith(WRITTEN_BY) and config.read_text() != text):
            config.write_text(text)

    def dagster_yaml(self) -> str:
        """The Dagster instance of this profile. Embedded: sqlite storage in DAGSTER_HOME (Dagster's default), one
        run at a time (the embedded Feast and MLflow stores are single-writer sqlite files). Production: run, event
        and schedule storage on PostgreSQL; `max_concurrent_runs` at once, while every pool (the Feast registry
        apply, the BentoML store, a deployment) takes one step at a time across all runs. The queue is read each
        second: a landed file's path to staging is two or three queued runs, one after the other."""
        lines = [WRITTEN_BY, "telemetry:", "  enabled: false"]
        if self.production:
            lines += ["storage:", "  postgres:", f"    postgres_url: {self.database_url('dagster')}"]
        lines += ["concurrency:", "  runs:", f"    max_concurrent_runs: {self.max_concurrent_runs}"]
        if self.production:
            lines += ["  pools:", "    default_limit: 1"]
        lines += ["run_queue:", "  dequeue_interval_seconds: 1"]
        return "\n".join(lines) + "\n"


def _choice(environ: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = environ.get(name, default)
    if value not in choices:
        raise SettingsError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value


WRITTEN_BY = "# Written by mlplatform from its settings (MLPLATFORM_*); remove this line to keep your own changes."


def _postgres_server(url: str) -> str:
    """MLPLATFORM_POSTGRES: a server URL without database and password (a password goes in PGPASSWORD, which every
    PostgreSQL client of the platform reads, so it is never written in a file, run config or log)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise SettingsError(f"MLPLATFORM_POSTGRES={url!r}: expected postgresql://USER@HOST:PORT")
    if parts.password is not None:
        raise SettingsError("MLPLATFORM_POSTGRES holds a password: set it in PGPASSWORD instead (the platform writes "
                            "this URL into dagster.yaml and run tags; PGPASSWORD it never writes)")
    if parts.path.strip("/") or parts.query:
        raise SettingsError(f"MLPLATFORM_POSTGRES={url!r}: give the server only; the databases are "
                            "<MLPLATFORM_DATABASE_PREFIX>_dagster, _mlflow and _feast")
    return f"postgresql://{parts.netloc}"


def requirements(root: Path = PROJECT) -> str:
    """The pinned requirements the platform runs with: the checkout's lock file, or for an installed platform every
    distribution installed next to it (`name==version`, as a lock file says it). A Bento records them."""
    lock = root / "requirements.lock"
    if lock.is_file():
        return lock.read_text()
    import json
    from importlib.metadata import distributions

    project = Path(os.environ["MLPLATFORM_PROJECT"]).resolve() if os.environ.get("MLPLATFORM_PROJECT") else None

    def pinnable(dist: Any) -> bool:
        """An index can install it: not the platform or the user's project (their code travels in the Bento),
        not an editable install (a folder on this machine)."""
        name = (dist.metadata["Name"] or "").lower()
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
        where = Path(str(dist.locate_file(""))).resolve()
        return bool(name) and name != "mlplatform" and not direct.get("dir_info", {}).get("editable") and not (
            project is not None and where.is_relative_to(project))

    pins = {f"{d.metadata['Name'].lower()}=={d.version}" for d in distributions() if pinnable(d)}
    return "".join(f"{pin}\n" for pin in sorted(pins))


@cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment the first time they are needed."""
    return Settings.from_env()
