"""End to end through the real command-line tools in subprocesses, on a tmp home."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mlplatform.deploy.processes import free_port
from mlplatform_tests.conftest import ROW
from mlplatform_tests.test_definitions import EXPECTED_ASSETS

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
COMMANDS = ["demo-data", "ingest", "demo", "reproduce", "retry", "dev", "paths", "serve", "status", "promote",
            "rollback", "audit", "stop", "plan", "loop"]
PORTS = {"MLPLATFORM_STAGING_PORT": str(free_port()), "MLPLATFORM_PRODUCTION_PORT": str(free_port())}


def run(args: list[str], home: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "BENTOML_HOME", "MLFLOW_TRACKING_URI")}
    env |= {"MLPLATFORM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), **PORTS}
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture
def home(tmp_path):
    """A platform home for one test; whatever the test deployed there is stopped afterwards."""
    yield tmp_path
    from mlplatform.deploy.embedded import EmbeddedDeployer
    from mlplatform.deploy.records import Deployments

    if (tmp_path / "deployments").exists():
        ports = {env: int(PORTS[f"MLPLATFORM_{env.upper()}_PORT"]) for env in ("staging", "production")}
        deployer = EmbeddedDeployer(Deployments(tmp_path / "deployments"), tmp_path / "bentoml", ports)
        for env in ports:
            deployer.stop_env(env)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(tmp_path, command):
    args = [str(BIN / "mlplatform"), *([command] if command else []), "--help"]
    out = run(args, tmp_path).stdout
    assert "Usage: mlplatform" in out
    if command is None:
        assert all(c in out for c in COMMANDS)


def test_demo_data_rejects_an_unknown_corruption_by_name(tmp_path):
    result = run([str(BIN / "mlplatform"), "demo-data", "--corrupt", "bogus"], tmp_path, check=False)
    assert result.returncode == 2 and "--corrupt 'bogus': expected one of wrong-dtype" in result.stderr


def mlflow_alias(home: Path, alias: str = "champion") -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    return str(client.get_model_version_by_alias("credit_model", alias).version)


def served_version(home: Path, env: str) -> str:
    key = [line for line in (home / "deployments" / env / "api-keys").read_text().splitlines()
           if line and not line.startswith("#")][0]
    answer = httpx.post(f"http://127.0.0.1:{PORTS[f'MLPLATFORM_{env.upper()}_PORT']}/predict", timeout=30,
                        json={"rows": [ROW]}, headers={"x-api-key": key})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == answer.headers["x-mlplatform-model-version"]
    return answer.json()["model_version"]


@pytest.mark.e2e
def test_a_release_from_landed_files_to_production_and_back_through_the_command_line(home):
    """The user's path: land files, ingest (a bad one is quarantined), train in CI with `dagster job execute` (a gate
    failure fails the step), staging serves every gated candidate, promote, release again, roll back, audit."""
    mlp, dagster = str(BIN / "mlplatform"), str(BIN / "dagster")
    run([mlp, "demo-data", "--days", "4", "--rows-per-day", "700", "--corrupt", "unknown-category"], home)
    first = run([mlp, "ingest"], home, check=False)
    assert first.returncode == 1  # the corrupt file failed its gate; the rest went through
    lines = first.stdout.splitlines()
    assert "  2026-01-01                       ok: 700 rows, 700 valid, 0 quarantined" in lines
    assert lines[-1] == "credit: 4 ingested, 0 unchanged, 1 rejected, 0 refused; training ok (exit 1: 1 rejected)"
    assert "DEBUG" not in first.stdout + first.stderr  # Dagster's event log only with --verbose
    (trained,) = [line for line in lines if line.startswith("credit_training_job: ")]
    assert trained.startswith("credit_training_job: ok (credit_model v1 @challenger, holdout roc auc 0.")
    assert f"gates passed: floors, no_regression, fairness, prediction_contract); staging serves it at " \
           f"http://127.0.0.1:{PORTS['MLPLATFORM_STAGING_PORT']}" in trained
    assert ("  2026-01-05_corrupt-unknown-category check credit/validated:bad_row_share failed: 70 of 700 rows "
            "quarantined: home_ownership: isin(('rent', 'own', 'mortgage', 'other')) (70 rows); the file is "
            "rejected: all 700 rows are quarantined") in lines
    assert (home / "quarantine" / "credit" / "2026-01-05_corrupt-unknown-category.rows.parquet").exists()
    second = run([mlp, "ingest"], home, check=False)
    assert second.returncode == 1  # the rejected file is still in the landing zone
    assert "  2026-01-01                       unchanged" in second.stdout.splitlines()
    assert "credit_training_job: unchanged (no partition changed)" in second.stdout
    assert served_version(home, "staging") == "1"

    config = home / "constant.yaml"
    config.write_text("ops:\n  credit__model:\n    config:\n      estimator: constant\n")
    gated = run([dagster, "job", "execute", "-m", "demo.definitions", "-j", "credit_training_job", "-c", str(config)],
                home, check=False)
    assert gated.returncode != 0
    assert "Asset check 'floors' on 'credit/evaluation' did not pass" in gated.stderr + gated.stdout
    assert "roc_auc 0.5000 < floor 0.6500" in gated.stderr + gated.stdout
    assert served_version(home, "staging") == "1"  # the failed candidate was never packaged or deployed
    after = run([mlp, "ingest"], home, check=False)  # nothing changed since: no training, but the failure is said
    assert after.returncode == 1 and "credit_training_job: unchanged (no partition changed); the last training run " \
        in after.stdout and "failed (`mlplatform retry " in after.stdout, after.stdout

    promoted = run([mlp, "promote", "--reason", "first release"], home)
    assert promoted.stdout.startswith("production serves credit_model v1 (credit_service:") and \
        "champion: v1" in promoted.stdout
    assert served_version(home, "production") == "1" and mlflow_alias(home) == "1"

    config.write_text("ops:\n  credit__model:\n    config:\n      regularization_c: 0.5\n")
    out = run([dagster, "job", "execute", "-m", "demo.definitions", "-j", "credit_training_job", "-c", str(config)],
              home)
    assert "RUN_SUCCESS" in out.stderr + out.stdout
    assert "Asset check 'no_regression' on 'credit/evaluation' passed" in out.stderr + out.stdout
    assert (home / "artifacts" / "reports" / "credit" / "v3" / "report.html").exists()
    assert served_version(home, "staging") == "3" and served_version(home, "production") == "1"
    run([mlp, "promote", "--reason", "v3 is better"], home)
    assert served_version(home, "production") == "3" and mlflow_alias(home) == "3"

    back = run([mlp, "rollback", "production", "--reason", "complaints"], home)
    assert "production serves credit_model v1 again" in back.stdout
    assert served_version(home, "production") == "1" and mlflow_alias(home) == "1"
    status = json.loads(run([mlp, "status", "--json"], home).stdout)
    production = {s["env"]: s for s in status}["production"]
    assert [(b["role"], b["model_version"], b["up"]) for b in production["backends"]] == [
        ("primary", "1", True), ("standby", "3", True)]
    audit = run([mlp, "audit"], home).stdout.splitlines()
    assert [line.split()[1:6] for line in audit] == [
        ["staging", "deploy", "—", "→", "v1"], ["production", "promote", "—", "→", "v1"],
        ["staging", "deploy", "v1", "→", "v3"], ["production", "promote", "v1", "→", "v3"],
        ["production", "rollback", "v3", "→", "v1"]]
    assert audit[-1].endswith("champion 3 → 1: complaints") and " by " in audit[-1]

    run([mlp, "stop", "production"], home)
    down = run([mlp, "status"], home, check=False)
    assert down.returncode == 1 and "router down" in down.stdout  # a deployed environment that does not serve
    restarted = run([mlp, "serve", "--env", "production"], home)  # after a reboot: from the record
    assert "router up" in restarted.stdout and served_version(home, "production") == "1"
    assert run([mlp, "status"], home).returncode == 0

    again = run([mlp, "reproduce", "1"], home)
    assert "credit_model v1: re-trained from training set" in again.stdout
    assert "predictions identical: max |Δ| = 0 over 1400 holdout rows" in again.stdout
    missing = run([mlp, "reproduce", "9"], home, check=False)
    assert missing.returncode == 2 and "credit_model has no version '9'" in missing.stderr


def test_dagster_definitions_validate_passes(tmp_path):
    out = run([str(BIN / "dagster"), "definitions", "validate", "-w", str(REPO / "workspace.yaml")], tmp_path)
    assert "Validation successful" in out.stdout + out.stderr


@pytest.mark.e2e
def test_the_dagster_ui_serves_the_asset_groups_of_the_workspace(tmp_path):
    import time

    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("BENTOML_HOME", "MLFLOW_TRACKING_URI")}
    env |= {"MLPLATFORM_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster")}
    (tmp_path / "dagster").mkdir()
    server = subprocess.Popen([str(BIN / "dagster-webserver"), "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1",
                               "-p", str(port)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        query = "{ assetNodes { assetKey { path } groupName } }"
        deadline, nodes = time.monotonic() + 120, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                reply = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=5)
                nodes = reply.json()["data"]["assetNodes"]
                if nodes:
                    break
            except (httpx.HTTPError, KeyError, TypeError, ValueError):
                pass
            time.sleep(1)
        assert nodes, f"UI did not answer: {server.stderr.read().decode()[-2000:] if server.poll() is not None else ''}"
        groups = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes}
        assert groups == EXPECTED_ASSETS
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_ingest_names_a_symbolic_link_in_the_landing_folder_as_refused_and_fails(home, tmp_path_factory):
    mlp = str(BIN / "mlplatform")
    run([mlp, "demo-data", "--days", "1", "--rows-per-day", "200"], home)
    secret = tmp_path_factory.mktemp("elsewhere") / "api-keys"
    secret.write_text("customer_id,event_timestamp\n1,2026-01-01\n")
    (home / "landing" / "credit" / "keys.csv").symlink_to(secret)
    result = run([mlp, "ingest", "--no-train"], home, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:2] == ["2026-01-01", "ok:"] for line in lines), lines
    assert any(line.strip().startswith("keys.csv") and "refused: not a regular file: symbolic links" in line
               for line in lines), lines
    assert not list((home / "quarantine").rglob("keys*"))  # the link was never read, nothing of it copied
