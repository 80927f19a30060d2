"""Shared fixtures: a fresh platform home per test, with real Dagster, pandera and Feast underneath."""

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlplatform.definitions import build_definitions
from mlplatform.lib.data.demo import credit_day, write_frame
from mlplatform.serving.predlog import PredictionLog
from mlplatform.settings import Settings
from mlplatform.specs import Spec
from mlplatform_tests.pipelines import CREDIT

# one valid application, as a client sends it to /predict
ROW = {"age": 30, "income": 50000.0, "loan_amount": 10000.0, "loan_term_months": 36, "credit_utilization": 0.3,
       "num_late_payments": 0, "employment_years": 5.0, "num_open_accounts": 3, "home_ownership": "rent",
       "purpose": "car"}


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

    def ingest(self, key: str, job: str | None = None) -> dg.ExecuteInProcessResult:
        if key not in self.instance.get_dynamic_partitions(f"{self.spec.name}_files"):
            self.instance.add_dynamic_partitions(f"{self.spec.name}_files", [key])
        return self.defs.resolve_job_def(job or f"{self.spec.name}_ingest_job").execute_in_process(
            instance=self.instance, partition_key=key, raise_on_error=False)

    def train(self, job: str | None = None, bento: bool = False, run_config: dict | None = None,
              ) -> dg.ExecuteInProcessResult:
        """The training job; without `bento` it stops after the gates (packaging costs a BentoML process)."""
        names = ("training_set", "model", "evaluation") + (("bento",) if bento else ())
        return self.defs.resolve_job_def(job or f"{self.spec.name}_training_job").execute_in_process(
            instance=self.instance, raise_on_error=False, run_config=run_config or {},
            asset_selection=[dg.AssetKey([self.spec.name, n]) for n in names])

    def build_training_set(self) -> dg.ExecuteInProcessResult:
        """Only the training set: the model needs MLflow and more days than these tests land."""
        return self.defs.resolve_job_def(f"{self.spec.name}_training_job").execute_in_process(
            instance=self.instance, raise_on_error=False,
            asset_selection=[dg.AssetKey([self.spec.name, "training_set"])])

    def materialized(self, name: str, partition: str | None = None) -> bool:
        key = dg.AssetKey([self.spec.name, name])
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1)
        return bool(records.records)


@pytest.fixture(autouse=True)
def _platform_environment():
    """Loading a project points this process at it (MLPLATFORM_PROJECT, its home): the next test, and every process
    it starts, sees the environment it would have seen without that test."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("MLPLATFORM_")}
    yield
    for name in [k for k in os.environ if k.startswith("MLPLATFORM_") and k not in saved]:
        del os.environ[name]
    os.environ.update(saved)


@pytest.fixture
def same_utc_day() -> None:
    """Start a test that writes prediction logs (filed by UTC day at each write) and then reads "today" with at
    least 15 minutes of the UTC day left, waiting past midnight otherwise: its writes and its reads fall on one day."""
    now = datetime.now(UTC)
    left = (datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC) - now).total_seconds()
    if left < 15 * 60:
        time.sleep(left + 1)


def make_settings(home: Path, **extra: str) -> Settings:
    return Settings.from_env({"MLPLATFORM_HOME": str(home), **extra})


@pytest.fixture
def platform(tmp_path: Path):
    from mlplatform.deploy.processes import free_port

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


def applications(rows: int, seed: int) -> pd.DataFrame:
    """Today's applications with calibrated scores: each outcome is drawn with the probability served for it."""
    rng = np.random.default_rng(seed)
    frame = credit_day(0, rows, seed=seed)
    frame["event_timestamp"] = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(minutes=5)
    frame["score"] = rng.beta(1.5, 3.5, rows).round(6)
    frame["default"] = (rng.random(rows) < frame["score"]).astype("int64")
    return frame


def serve(settings: Settings, frame: pd.DataFrame, version: str, role: str, invert: bool = False) -> None:
    """What the production service logs for `predict_entity` requests of 20 customers each (the scores of a
    version that ranks backwards when `invert`)."""
    log = PredictionLog(settings.deployments_dir / "production" / "predictions", "credit_model", version)
    features = frame[CREDIT.contract_feature_names].to_dict("records")
    scores = (1 - frame["score"] if invert else frame["score"]).tolist()
    ids = frame["customer_id"].tolist()
    for s in range(0, len(frame), 20):
        answer = {"probabilities": scores[s:s + 20], "labels": [int(p >= 0.3) for p in scores[s:s + 20]]}
        log.append(f"{version}-{role}-{s:08d}", features[s:s + 20], answer, role=role, entity_ids=ids[s:s + 20])


# each runs for minutes
LONGEST_FIRST = ("test_production_profile.py", "test_cli.py", "test_user_project.py", "test_rebuild.py",
                 "test_deployment.py", "test_daemon.py", "test_tasks.py")


def pytest_collection_modifyitems(items: list) -> None:
    """The longest files first, so that with `--dist loadfile` they start at once on different workers instead
    of one of them arriving last."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
