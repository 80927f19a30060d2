"""`mlplatform plan`: what is stale and why, and what would run, from the command line (text, --json, --check)."""

import json

import pytest

from mlplatform_tests.e2e.test_cli import BIN, run

pytestmark = pytest.mark.e2e


def test_the_plan_names_what_is_stale_and_why_and_fails_the_check_until_it_is_built(tmp_path):
    mlp = str(BIN / "mlplatform")
    run([mlp, "demo-data", "--days", "3", "--rows-per-day", "300"], tmp_path)
    landed = json.loads(run([mlp, "plan", "--json"], tmp_path).stdout)
    stale = {(e["asset"], e["partition"]): e for e in landed["stale"]}
    assert stale[("credit/raw", "2026-01-02")]["reasons"] == ["never materialized"]
    assert stale[("credit/raw", "2026-01-02")]["job"] == "credit_ingest_job"
    assert "upstream will rebuild: credit/raw[2026-01-02]" in stale[("credit/validated", "2026-01-02")]["reasons"]
    assert {r["job"] for r in landed["runs"]} == {"credit_ingest_job", "credit_training_job", "credit_promote_job",
                                                  "automation"}
    assert run([mlp, "plan", "--check"], tmp_path, check=False).returncode == 1

    run([mlp, "ingest", "--no-train", "--partition", "2026-01-01", "--partition", "2026-01-02"], tmp_path)
    ingested = json.loads(run([mlp, "plan", "--json"], tmp_path).stdout)
    stale = {(e["asset"], e["partition"]): e for e in ingested["stale"]}
    assert ("credit/raw", "2026-01-01") not in stale and ("credit/features", "2026-01-02") not in stale
    assert stale[("credit/raw", "2026-01-03")]["reasons"] == ["new partition: 2026-01-03"]
    assert stale[("credit/training_set", None)]["reasons"][0] == "never materialized"
    text = run([mlp, "plan"], tmp_path).stdout
    assert "would run:" in text and f"{'credit_ingest_job':26} partitions 2026-01-03:" in text
