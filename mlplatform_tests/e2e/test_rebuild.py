"""Minimal rebuild, proven: for each kind of change, the loop (sensors and automation, as the daemon runs them)
re-materializes exactly the assets and partitions downstream of what changed, and stops where data did not."""

import dataclasses
import shutil
from pathlib import Path

import dagster as dg
import pytest

from mlplatform.code_versions import PROJECT, Sources
from mlplatform.definitions import build_definitions
from mlplatform.deploy.processes import free_port
from mlplatform.lib.data.demo import credit_day
from mlplatform.orchestration import plan as planning
from mlplatform.orchestration.loop import Loop
from mlplatform.specs import Gates
from mlplatform_tests.conftest import Platform, make_settings
from mlplatform_tests.pipelines import CREDIT

pytestmark = pytest.mark.e2e
CHAIN = {"credit/training_set", "credit/model", "credit/evaluation", "credit/bento", "credit/staging"}
FILES = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]


def per_file(partition: str, *names: str) -> set[str]:
    return {f"credit/{n}[{partition}]" for n in names}


def checkout(tmp_path: Path) -> Path:
    """A copy of the sources the code versions are read from, to edit like a pull request would."""
    root = tmp_path / "checkout"
    shutil.copytree(PROJECT / "mlplatform", root / "mlplatform", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(PROJECT / "bentos", root / "bentos")
    shutil.copy(PROJECT / "requirements.lock", root / "requirements.lock")
    return root


def test_each_kind_of_change_rebuilds_exactly_its_downstream(tmp_path, migrated_mlflow_db):
    # staging's router on a port of this test's own (as the platform fixture does), never the default 3100: another
    # checkout's test or a developer's `mlplatform dev` may serve there
    settings = make_settings(tmp_path / ".mlplatform", MLPLATFORM_STAGING_PORT=str(free_port()),
                             MLPLATFORM_PRODUCTION_PORT=str(free_port()))
    (tmp_path / ".mlplatform" / "mlflow").mkdir(parents=True)
    shutil.copyfile(migrated_mlflow_db, settings.mlflow_tracking_uri.removeprefix("sqlite:///"))
    root = checkout(tmp_path)
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        platform = Platform(settings, build_definitions([CREDIT], settings, Sources(root)), instance)
        loop = Loop(platform.defs, instance, log=print)

        def change(spec=CREDIT) -> set[str]:  # noqa: ANN001
            """Settle the loop on (possibly new) definitions; what it materialized."""
            loop.defs = build_definitions([spec], settings, Sources(root))
            since = len(loop.runs)
            runs = loop.settle()
            assert all(r.ok for r in runs), [r.line() for r in runs if not r.ok]
            return loop.materialized(since)

        try:
            for d in range(3):
                platform.land(f"{FILES[d]}.csv", day=d, rows=1000)
            baseline = change()
            assert baseline == CHAIN | {m for p in FILES[:3] for m in per_file(p, "raw", "validated", "labels",
                                                                                  "features", "data_drift")} | {
                "credit/feature_registry"}

            # a new partition: its own chain, its drift, and the unpartitioned chain once
            platform.land(f"{FILES[3]}.csv", day=3, rows=1000)
            assert change() == CHAIN | per_file(FILES[3], "raw", "validated", "labels", "features", "data_drift")

            # a changed partition: the same, for that partition only
            platform.land(f"{FILES[1]}.csv", credit_day(1, 1000, seed=7))
            assert change() == CHAIN | per_file(FILES[1], "raw", "validated", "labels", "features", "data_drift")

            # feature code edited without changing a value: every partition's features, and nothing after them
            features_py = root / "mlplatform" / "lib" / "features" / "featurize.py"
            features_py.write_text(features_py.read_text() + "\n# reviewed: no behaviour change\n")
            edited = build_definitions([CREDIT], settings, Sources(root))
            planned = planning.plan(instance, edited.resolve_asset_graph())  # what `mlplatform plan` prints
            assert {(e.asset, e.partition) for e in planned if e.reasons[0].startswith("code version changed: ")} \
                == {("credit/features", p) for p in FILES}
            # the chain if the features' data change; production has never been promoted (manual promotion)
            assert {e.asset for e in planned if e.partition is None} == CHAIN | {"credit/production"}
            assert change() == {f"credit/features[{p}]" for p in FILES}
            settled = planning.plan(instance, loop.defs.resolve_asset_graph())  # nothing stale but the promotion
            assert [(e.asset, e.partition, e.reasons, e.job) for e in settled] == [
                ("credit/production", None, ["never materialized"], "credit_promote_job")]

            # evaluation code edited: the evaluation only (same numbers, same gates: nothing to repackage)
            evaluate_py = root / "mlplatform" / "lib" / "evaluation" / "metrics.py"
            evaluate_py.write_text(evaluate_py.read_text() + "\n# reviewed: no behaviour change\n")
            assert change() == {"credit/evaluation"}

            # a gate threshold: the evaluation only (the candidate passes either way)
            lowered = dataclasses.replace(CREDIT, gates=Gates(floors=(("roc_auc", 0.6), ("pr_auc", 0.25))))
            assert change(lowered) == {"credit/evaluation"}

            # a hyper-parameter: the model and what follows it
            assert change(dataclasses.replace(lowered, regularization_c=0.5)) == CHAIN - {"credit/training_set"}
            assert change(dataclasses.replace(lowered, regularization_c=0.5)) == set()  # and then it is settled
        finally:
            platform.defs.resources["deployment"].deployer().stop_env("staging")
