"""End to end through the real command-line tools in subprocesses, on a tmp home."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlplatform.lib.deployer import free_port
from mlplatform_tests.test_definitions import EXPECTED_ASSETS

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
COMMANDS = ["demo-data", "ingest", "demo", "reproduce", "retry", "dev", "paths"]


def run(args: list[str], home: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "BENTOML_HOME", "MLFLOW_TRACKING_URI")}
    env |= {"MLPLATFORM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr[-3000:]}")
    return result


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


@pytest.mark.e2e
def test_cli_ingests_reports_a_bad_file_and_skips_unchanged_ones(tmp_path):
    mlp = str(BIN / "mlplatform")
    run([mlp, "demo-data", "--days", "4", "--rows-per-day", "600", "--corrupt", "unknown-category"], tmp_path)
    first = run([mlp, "ingest"], tmp_path, check=False)
    assert first.returncode == 1
    lines = first.stdout.splitlines()
    assert "  2026-01-01                       ok" in lines
    assert any(line.startswith("training_job: ok (credit_model v1 @challenger, holdout ROC AUC 0.") and
               line.endswith("gates passed: floors, no_regression, fairness, prediction_contract)") for line in lines)
    assert ("  2026-01-05_corrupt-unknown-category check credit/validated:bad_row_share failed: 60 of 600 rows "
            "quarantined: home_ownership: isin(('rent', 'own', 'mortgage', 'other')) (60 rows)") in lines
    second_run = run([mlp, "ingest"], tmp_path, check=False)
    second = second_run.stdout.splitlines()
    assert second_run.returncode == 1  # the rejected file is still in the landing zone
    assert "  2026-01-01                       unchanged" in second
    assert "  2026-01-05_corrupt-unknown-category unchanged (rejected earlier: fix or remove the file)" in second
    assert "training_job: unchanged (no partition changed)" in second
    assert (tmp_path / "quarantine" / "credit" / "2026-01-05_corrupt-unknown-category.rows.parquet").exists()


@pytest.mark.e2e
def test_dagster_job_execute_trains_gates_and_fails_the_ci_step_when_a_gate_fails(tmp_path):
    mlp, dagster = str(BIN / "mlplatform"), str(BIN / "dagster")
    run([mlp, "demo-data", "--days", "4", "--rows-per-day", "700"], tmp_path)
    # The sensor adds partitions in a deployment; here the CLI registers them without running anything.
    run([str(BIN / "python"), "-c", "import dagster as dg; dg.DagsterInstance.get().add_dynamic_partitions("
         "'credit_files', ['2026-01-01'])"], tmp_path)
    tags = json.dumps({"dagster/partition": "2026-01-01"})
    run([dagster, "job", "execute", "-m", "mlplatform.definitions", "-j", "ingest_job", "--tags", tags], tmp_path)
    run([mlp, "ingest", "--no-train"], tmp_path)  # the other days; the first one is reported unchanged
    out = run([dagster, "job", "execute", "-m", "mlplatform.definitions", "-j", "training_job"], tmp_path)
    assert "RUN_SUCCESS" in out.stderr + out.stdout
    assert "Asset check 'fairness' on 'credit/evaluation' passed" in out.stderr + out.stdout
    assert (tmp_path / "artifacts" / "reports" / "credit" / "v1" / "report.html").exists()
    config = tmp_path / "constant.yaml"
    config.write_text("ops:\n  credit__model:\n    config:\n      estimator: constant\n")
    gated = run([dagster, "job", "execute", "-m", "mlplatform.definitions", "-j", "training_job", "-c", str(config)],
                tmp_path, check=False)
    assert gated.returncode != 0
    assert "Asset check 'floors' on 'credit/evaluation' did not pass" in gated.stderr + gated.stdout
    assert "roc_auc 0.5000 < floor 0.6500" in gated.stderr + gated.stdout
    again = run([mlp, "reproduce", "1"], tmp_path)
    assert "credit_model v1: re-trained from training set" in again.stdout
    assert "predictions identical: max |Δ| = 0 over 1400 holdout rows" in again.stdout
    missing = run([mlp, "reproduce", "9"], tmp_path, check=False)
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
