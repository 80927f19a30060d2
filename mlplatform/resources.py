"""ConfigurableResources: the landing zone, the quarantine, the Feast store, MLflow and evaluation artifacts."""

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import PrivateAttr

from mlplatform.specs import Spec

if TYPE_CHECKING:
    from mlplatform.deploy.deployer import Deployer
    from mlplatform.lib.data.landing import Listing


class LandingZone(dg.ConfigurableResource):
    """Folders where data files land, one per spec (a spec's relative `landing` is taken under `root`)."""

    root: str

    def folder(self, spec: Spec) -> Path:
        return Path(self.root) / (spec.landing or spec.name)

    def listing(self, spec: Spec) -> "Listing":
        """The spec's landed files by partition key, and the other entries with why they are not ingested."""
        from mlplatform.lib.data.landing import list_landing

        return list_landing(self.folder(spec), spec.file_formats)

    def files(self, spec: Spec) -> dict[str, Path]:
        return self.listing(spec).files

    def path(self, spec: Spec, partition_key: str) -> Path:
        """The landed file of a partition; a missing file gives a path that does not exist."""
        return self.files(spec).get(partition_key, self.folder(spec) / f"{partition_key}.missing")


class Quarantine(dg.ConfigurableResource):
    """Where rejected rows and unreadable files are kept, so that nothing landed is ever lost."""

    root: str

    def folder(self, spec: Spec) -> Path:
        return Path(self.root) / spec.name

    def keep_rows(self, spec: Spec, partition_key: str, rows: Any) -> Path:
        """Write a partition's rejected rows (values as landed, plus the failed checks) as Parquet."""
        folder = self.folder(spec)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{partition_key}.rows.parquet"
        tmp = folder / f".{path.name}.tmp"
        rows.astype(str).to_parquet(tmp, index=True)
        tmp.replace(path)
        return path

    def keep_file(self, spec: Spec, partition_key: str, source: Path) -> Path | None:
        """Copy an unreadable landed file aside, byte for byte (never through a symbolic link)."""
        if source.is_symlink() or not source.is_file():
            return None
        folder = self.folder(spec)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{partition_key}.file{source.suffix}"
        shutil.copyfile(source, target)
        return target

    def clear(self, spec: Spec, partition_key: str) -> None:
        """Forget an earlier quarantine of a partition once a new version of its file has no bad rows."""
        (self.folder(spec) / f"{partition_key}.rows.parquet").unlink(missing_ok=True)


class FeastStore(dg.ConfigurableResource):
    """The Feast feature store with all its state in `feast_dir`; feast is imported on first use only."""

    feast_dir: str
    repo_path: str
    online_store: str = "sqlite"
    redis_connection: str = "127.0.0.1:6379"
    registry: str = ""  # a SQLAlchemy URL: Feast's SQL registry there (production); empty: a file in feast_dir
    project: str = "mlplatform"
    _store: Any = PrivateAttr(default=None)

    def store(self) -> Any:
        if self._store is None:
            from feast import FeatureStore

            from mlplatform.lib.features.feast_repo import repo_config

            Path(self.feast_dir).mkdir(parents=True, exist_ok=True)
            config = repo_config(Path(self.feast_dir), Path(self.repo_path), self.online_store, self.redis_connection,
                                 self.registry, self.project)
            self._store = FeatureStore(config=config, repo_path=self.repo_path)
        return self._store

    def offline_dir(self, spec: Spec) -> Path:
        from mlplatform.lib.features.feast_repo import offline_dir

        return offline_dir(Path(self.feast_dir), spec)

    def apply(self, spec: Spec) -> list[str]:
        """Register the spec's entity, source, feature view and feature service; returns their names."""
        from mlplatform.lib.features.feast_repo import feast_objects

        objects = feast_objects(spec, self.offline_dir(spec))
        self.store().apply(objects)
        return [f"{type(o).__name__}:{o.name}" for o in objects]


class MlflowTracking(dg.ConfigurableResource):
    """MLflow tracking and registry; each call uses an explicit client, so no run is ended behind our back."""

    tracking_uri: str
    artifact_root: str

    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)


class Artifacts(dg.ConfigurableResource):
    """Files the platform keeps besides the stores: training set snapshots (for reproduction) and reports."""

    root: str

    def snapshot(self, spec: Spec, data_version: str) -> Path:
        """The content-addressed copy of a training set (its data version is the hash of its content)."""
        return Path(self.root) / "snapshots" / spec.name / f"training_set-{data_version}.parquet"

    def keep_snapshot(self, spec: Spec, data_version: str, frame: Any) -> Path:
        """Write a training set once per data version (same version, same content: nothing to rewrite)."""
        path = self.snapshot(spec, data_version)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            frame.to_parquet(tmp, index=False)
            tmp.replace(path)
        return path

    def drift_report(self, spec: Spec, kind: str, partition: str) -> Path:
        """The HTML drift report of one batch (`kind` is data or live)."""
        return Path(self.root) / "drift" / spec.name / kind / f"{partition}.html"

    def reports(self, spec: Spec, model_version: str) -> Path:
        return Path(self.root) / "reports" / spec.name / f"v{model_version}"


class BentoStore(dg.ConfigurableResource):
    """The BentoML model and Bento store under `home` (BENTOML_HOME)."""

    home: str
    env: str = "local"  # the environment Bentos are built for: decides whether their API needs keys


class DeploymentTarget(dg.ConfigurableResource):
    """The embedded deployer: records and audit log under `root`, `bentoml serve` processes behind a router."""

    root: str
    bentoml_home: str
    staging_port: int = 3100
    production_port: int = 3200
    feast_dir: str = ""  # the online store `predict_entity` reads (empty: that API answers 503)
    feast_online_store: str = "sqlite"
    redis_connection: str = "127.0.0.1:6379"
    feast_registry: str = ""
    feast_project: str = "mlplatform"

    def deployer(self) -> "Deployer":
        from mlplatform.deploy.embedded import EmbeddedDeployer
        from mlplatform.deploy.records import Deployments

        online = {"MLPLATFORM_FEAST_DIR": self.feast_dir, "MLPLATFORM_FEAST_ONLINE_STORE": self.feast_online_store,
                  "MLPLATFORM_REDIS": self.redis_connection, "MLPLATFORM_FEAST_REGISTRY": self.feast_registry,
                  "MLPLATFORM_FEAST_PROJECT": self.feast_project} if self.feast_dir else {}
        return EmbeddedDeployer(Deployments(Path(self.root)), Path(self.bentoml_home),
                                ports={"staging": self.staging_port, "production": self.production_port},
                                backend_env=online)

    def error_rate(self, env: str) -> tuple[float, int] | None:
        """The serving primary's share of failed prediction requests since it started, from its /metrics (through
        the environment's router); None when nothing answers."""
        import urllib.request

        from mlplatform.lib.monitoring.triggers import error_rate

        try:
            with urllib.request.urlopen(f"{self.deployer().router_url(env)}/metrics", timeout=5) as answer:
                return error_rate(answer.read().decode())
        except OSError:
            return None


class RunLock(dg.ConfigurableResource):
    """The home's lock, held for a whole run: the embedded stores (sqlite MLflow and Feast, asset values stored by
    asset key) are single-writer, so two runs of one home never overlap, whoever starts them (the daemon, a command,
    the UI). A second run waits for the first, saying which one it waits for, and fails after `timeout_s`.
    `per_run` (production: stores that take runs in parallel): `path` is a folder and each run holds a lock of its
    own there, so a run whose process died is still told from a live one (`orchestration.dead_runs`)."""

    path: str
    timeout_s: int = 1800
    per_run: bool = False
    _handle: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        import fcntl
        import os
        import time

        run_id = context.run.run_id if context.run is not None else f"pid-{os.getpid()}"
        path = Path(self.path) / f"{run_id}.lock" if self.per_run else Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - held until the run ends (teardown_after_execution)
        deadline, said = time.monotonic() + self.timeout_s, 0.0
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = path.read_text().strip() or "another process"
                if time.monotonic() > deadline:
                    handle.close()
                    raise RuntimeError(f"this home's runs do not overlap (single-writer embedded stores), and "
                                       f"{holder} still runs after {self.timeout_s} s; try again when it ends"
                                       ) from None
                if time.monotonic() - said >= 60 and context.log is not None:
                    context.log.warning(f"waiting for {holder} to end: runs of one home do not overlap")
                    said = time.monotonic()
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(f"run {run_id} (pid {os.getpid()})\n")
        handle.flush()
        self._handle = handle

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._handle is not None:
            if self.per_run:
                Path(self._handle.name).unlink(missing_ok=True)
            self._handle.truncate(0)
            self._handle.close()  # closing releases the lock
            self._handle = None


class RunStorage(dg.FilesystemIOManager):
    """Asset values on the local file system (FilesystemIOManager), with the home's run lock held for the run: every
    run that materializes anything stores through it."""

    lock: RunLock
