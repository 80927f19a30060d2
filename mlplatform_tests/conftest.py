"""Shared fixtures: a fresh platform home per test, with real Dagster, pandera and Feast underneath."""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from mlplatform.definitions import build_definitions
from mlplatform.lib.demo_data import credit_day, write_frame
from mlplatform.settings import Settings
from mlplatform.specs import CREDIT, Spec


@dataclass
class Platform:
    """One isolated platform: settings under tmp, its definitions and a Dagster instance."""

    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance
    spec: Spec = CREDIT

    @property
    def landing(self) -> Path:
        return self.settings.landing_root / self.spec.name

    def land(self, name: str, frame=None, day: int = 0, rows: int = 300) -> Path:  # noqa: ANN001
        """Write a landed file (a demo day unless a frame is given)."""
        frame = credit_day(day, rows) if frame is None else frame
        return write_frame(frame, self.landing / name)

    def ingest(self, key: str, job: str = "ingest_job") -> dg.ExecuteInProcessResult:
        if key not in self.instance.get_dynamic_partitions(f"{self.spec.name}_files"):
            self.instance.add_dynamic_partitions(f"{self.spec.name}_files", [key])
        return self.defs.resolve_job_def(job).execute_in_process(
            instance=self.instance, partition_key=key, raise_on_error=False)

    def train(self, job: str = "training_job", bento: bool = False, run_config: dict | None = None,
              ) -> dg.ExecuteInProcessResult:
        """The training job; without `bento` it stops after the gates (packaging costs a BentoML process)."""
        names = ("training_set", "model", "evaluation") + (("bento",) if bento else ())
        return self.defs.resolve_job_def(job).execute_in_process(
            instance=self.instance, raise_on_error=False, run_config=run_config or {},
            asset_selection=[dg.AssetKey([self.spec.name, n]) for n in names])

    def build_training_set(self) -> dg.ExecuteInProcessResult:
        """Only the training set: the model needs MLflow and more days than these tests land."""
        return self.defs.resolve_job_def("training_job").execute_in_process(
            instance=self.instance, raise_on_error=False,
            asset_selection=[dg.AssetKey([self.spec.name, "training_set"])])

    def materialized(self, name: str, partition: str | None = None) -> bool:
        key = dg.AssetKey([self.spec.name, name])
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1)
        return bool(records.records)


def make_settings(home: Path, **extra: str) -> Settings:
    return Settings.from_env({"MLPLATFORM_HOME": str(home), **extra})


@pytest.fixture
def platform(tmp_path: Path):
    from mlplatform.lib.deployer import free_port

    ports = {"MLPLATFORM_STAGING_PORT": str(free_port()), "MLPLATFORM_PRODUCTION_PORT": str(free_port())}
    settings = make_settings(tmp_path / ".mlplatform", **ports)  # hidden, like the default home
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        platform = Platform(settings, build_definitions([CREDIT], settings), instance)
        yield platform
        if settings.deployments_dir.exists():  # whatever a test deployed stops with it
            deployer = platform.defs.resources["deployment"].deployer()
            for env in ("staging", "production"):
                deployer.stop_env(env)


@pytest.fixture(scope="session")
def migrated_mlflow_db(tmp_path_factory) -> Path:
    """An MLflow sqlite database with its schema migrated once (a fresh one costs ~7 s of migrations)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracked_platform(platform, migrated_mlflow_db):
    """A platform whose MLflow database starts as a copy of the migrated one."""
    import shutil

    target = Path(platform.settings.mlflow_tracking_uri.removeprefix("sqlite:///"))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_mlflow_db, target)
    return platform


