"""Environments and paths, read once from environment variables.

All state of the embedded defaults lives under one folder, `$MLPLATFORM_HOME` (default `./.mlplatform`).
"""

import os
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

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def run_lock(self) -> Path:
        """Held by every run of this home for as long as it lives (runs of one home never overlap)."""
        return self.home / ".run.lock"

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
        return self.mlflow_uri or f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

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
        online = environ.get("MLPLATFORM_FEAST_ONLINE_STORE", "sqlite")
        if online not in ONLINE_STORES:
            raise SettingsError(f"MLPLATFORM_FEAST_ONLINE_STORE={online!r}: expected one of {', '.join(ONLINE_STORES)}")
        promotion = environ.get("MLPLATFORM_PROMOTION", "manual")
        if promotion not in PROMOTION_POLICIES:
            raise SettingsError(f"MLPLATFORM_PROMOTION={promotion!r}: expected one of {', '.join(PROMOTION_POLICIES)}")
        retraining = environ.get("MLPLATFORM_RETRAINING", "on_new_data")
        if retraining not in RETRAINING_POLICIES:
            raise SettingsError(f"MLPLATFORM_RETRAINING={retraining!r}: expected one of "
                                f"{', '.join(RETRAINING_POLICIES)}")
        ports = {}
        for name, default in (("staging", 3100), ("production", 3200)):
            raw = environ.get(f"MLPLATFORM_{name.upper()}_PORT", str(default))
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise SettingsError(f"MLPLATFORM_{name.upper()}_PORT={raw!r}: expected a port number (1-65535)")
            ports[name] = int(raw)
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
               "MLPLATFORM_RUN_LOCK_TIMEOUT": str(self.run_lock_timeout)}
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
        if not config.exists():
            config.write_text(DAGSTER_YAML)


# sqlite storage in DAGSTER_HOME is Dagster's default. One run at a time: the embedded Feast and MLflow stores are
# single-writer sqlite files (raise it with Postgres, Redis and a real run launcher). The queue is read each second,
# not each 5 s: a landed file's path to staging is two or three queued runs, one after the other.
DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1
run_queue:
  dequeue_interval_seconds: 1
"""


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
