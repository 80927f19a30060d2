"""The embedded deployer for real: built Bentos served by `bentoml serve` behind the router on 127.0.0.1."""

import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from mlplatform.deploy import packaging
from mlplatform.deploy.deployer import Candidate
from mlplatform.deploy.embedded import EmbeddedDeployer
from mlplatform.deploy.processes import children, free_port
from mlplatform.deploy.records import DeploymentError, Deployments
from mlplatform.lib.data.demo import credit_day, write_frame
from mlplatform.lib.features.featurize import featurize
from mlplatform.lib.training.train import TrainParams, fit
from mlplatform_tests.pipelines import CREDIT

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("same_utc_day")]
ROWS = credit_day(9, 40)[CREDIT.contract_feature_names].to_dict("records")


def _candidate(home: Path, version: str, c: float) -> Candidate:
    """A logistic regression (regularisation `c`) registered as `version`, packaged as a Bento with a smoke set."""
    raw = pd.concat([credit_day(d, 400) for d in range(3)], ignore_index=True)
    frame = featurize(raw, CREDIT).assign(**{CREDIT.label: raw[CREDIT.label]})
    pipeline, _, _ = fit(frame, CREDIT, TrainParams("logistic_regression", c, 200, 42, 1))
    labels = {"mlflow_model": CREDIT.model_name, "mlflow_version": version}
    built = packaging.package(CREDIT, pipeline, home / "bentoml", "staging", labels,
                          {**labels, "decision_threshold": 0.3}, smoke_rows=ROWS[:16],
                          model_card=f"# Model card: {CREDIT.model_name} v{version}\n")
    return Candidate(built.tag, str(built.path), CREDIT.model_name, version, {"mlflow_run": f"run-{version}"})


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """Two packaged versions (different regularisation, so different answers) and a deployer on free ports."""
    home = tmp_path_factory.mktemp("deploy")
    v1, v2 = _candidate(home, "1", 1.0), _candidate(home, "2", 0.001)
    deployer = EmbeddedDeployer(Deployments(home / "deployments"), home / "bentoml",
                        ports={"staging": free_port(), "production": free_port()})
    yield deployer, v1, v2
    for env in ("staging", "production"):
        deployer.stop_env(env)
    left = [p for p in Path("/proc").glob("[0-9]*") if str(home).encode() in _cmdline(p)]
    assert not left, f"processes still running after stop_env: {[_cmdline(p) for p in left]}"


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def eventually(read, ready, timeout: float = 60):  # noqa: ANN001, ANN201
    """Poll `read()` until `ready(value)` or the timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    value = read()
    while not ready(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value


def predict(deployer: EmbeddedDeployer, env: str, entity: str | None = None, key: str | None = None) -> httpx.Response:
    headers = {"x-api-key": key or deployer.api_key(env)} | ({"x-entity-id": entity} if entity else {})
    return httpx.post(f"{deployer.router_url(env)}/predict", json={"rows": ROWS[:1]}, headers=headers, timeout=30)


def test_the_bento_carries_its_smoke_set_and_model_card(rig):
    _, v1, _ = rig
    smoke = json.loads(packaging.bento_file(v1.bento_path, "smoke.json").read_text())
    assert smoke["rows"] == ROWS[:16] and len(smoke["outputs"]) == 16
    assert packaging.bento_file(v1.bento_path, "model_card.md").read_text().startswith("# Model card: credit_model v1")


def test_blue_green_moves_traffic_without_a_failed_request_and_rollback_restores(rig):
    deployer, v1, v2 = rig
    first = deployer.deploy("staging", v1, reason="first")
    assert first.primary.model_version == "1"
    assert predict(deployer, "staging").headers["x-mlplatform-model-version"] == "1"
    assert predict(deployer, "staging", key="wrong").status_code == 401  # the backend's auth, through the router
    info = httpx.post(f"{deployer.router_url('staging')}/info", json={}, timeout=30,
                      headers={"x-api-key": deployer.api_key("staging")}).json()
    assert info["model_card"].startswith("# Model card: credit_model v1") and info["model_version"] == "1"

    seen: list[tuple[int, str, bool]] = []  # (status, version, sent after deploy() returned), in answer order
    stop, switched = threading.Event(), threading.Event()

    def load() -> None:  # bounded: stops on the event or after 20000 requests
        with httpx.Client(base_url=deployer.router_url("staging"), timeout=30,
                          headers={"x-api-key": deployer.api_key("staging")}) as client:
            for _ in range(20_000):
                if stop.is_set():
                    return
                sent_after = switched.is_set()  # read before sending: the answers of 4 clients arrive in any order
                try:
                    answer = client.post("/predict", json={"rows": ROWS[:1]})
                    seen.append((answer.status_code, answer.headers.get("x-mlplatform-model-version", "?"),
                                 sent_after))
                except httpx.HTTPError as exc:
                    seen.append((0, type(exc).__name__, sent_after))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        eventually(lambda: len(seen), lambda n: n >= 4)  # v1 has answered before the switch starts
        second = deployer.deploy("staging", v2, reason="better model")  # returns once the router serves v2
        switched.set()
        eventually(lambda: sum(s[2] for s in list(seen)), lambda n: n >= 8)  # answers to requests sent after it
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert second.primary.model_version == "2" and second.sequence == first.sequence + 1
    failed = [s for s in seen if s[0] != 200]
    assert not failed and len(seen) > 100, f"{len(failed)} of {len(seen)} requests failed: {failed[:5]}"
    versions = [v for _, v, _ in seen]
    after = [v for _, v, sent_after in seen if sent_after]  # the last requests, by when they were sent
    assert versions[0] == "1" and after and set(after) == {"2"} and set(versions) == {"1", "2"}

    back = deployer.rollback("staging", reason="test rollback")
    assert back.primary.model_version == "1" and back.primary.pid == first.primary.pid  # the warm standby
    assert predict(deployer, "staging").headers["x-mlplatform-model-version"] == "1"
    actions = [(e["action"], (e["from"] or {}).get("model_version"), e["to"]["model_version"])
               for e in deployer.deployments.audit_entries("staging")]
    assert actions == [("deploy", None, "1"), ("deploy", "1", "2"), ("rollback", "2", "1")]
    from mlplatform.deploy.compose import validate

    compose = validate(deployer.compose_dir("staging") / "docker-compose.yaml")  # follows the record
    assert compose["services"]["primary"]["image"] == v1.bento_tag
    status = deployer.status("staging")
    assert status["router"] == "up"
    assert [(b["role"], b["model_version"], b["up"]) for b in status["backends"]] == [("primary", "1", True),
                                                                                     ("standby", "2", True)]


def test_canary_is_sticky_by_entity_and_says_who_answered_shadow_is_logged_not_returned(rig):
    deployer, v1, v2 = rig
    deployer.deploy("production", v1, reason="champion")
    canary = deployer.deploy("production", v2, strategy="canary", canary_share=0.5, reason="try v2")
    assert canary.strategy == "canary" and canary.candidate.model_version == "2"
    sides = {}
    for entity in (f"customer-{i}" for i in range(30)):
        answers = {(a.headers["x-mlplatform-answered-by"], a.headers["x-mlplatform-model-version"])
                   for a in (predict(deployer, "production", entity) for _ in range(3))}
        assert len(answers) == 1, f"{entity} was answered by {answers}"
        sides[entity] = answers.pop()
    assert set(sides.values()) == {("primary", "1"), ("candidate", "2")}
    one = predict(deployer, "production", "customer-0").json()
    assert one["model_version"] == sides["customer-0"][1]

    deployer.set_strategy("production", "shadow", 0.0, reason="observe v2 on all traffic")
    answers = [predict(deployer, "production", f"customer-{i}") for i in range(10)]
    assert {(a.headers["x-mlplatform-answered-by"], a.json()["model_version"]) for a in answers} == {("primary", "1")}
    shadow_log = deployer.deployments.env_dir("production") / "shadow.jsonl"
    lines = eventually(lambda: shadow_log.read_text().splitlines() if shadow_log.exists() else [],
                       lambda got: len(got) >= 10)
    entries = [json.loads(line) for line in lines]
    assert len(entries) >= 10 and {(e["primary_version"], e["shadow_version"], e["status"]) for e in entries} == {
        ("1", "2", 200)}
    assert entries[-1]["shadow"] != entries[-1]["primary"]  # the candidate really scored it, differently
    assert [e["action"] for e in deployer.deployments.audit_entries("production")] == ["deploy", "deploy", "strategy"]


def test_a_failed_smoke_test_or_a_corrupt_record_leaves_the_last_good_deployment_serving(rig, tmp_path):
    deployer, v1, v2 = rig
    current = deployer.deployments.read("staging")
    if current is None or current.primary.model_version != "1":
        deployer.deploy("staging", v1, reason="baseline")
    broken_dir = tmp_path / "broken"
    shutil.copytree(v2.bento_path, broken_dir)
    smoke = packaging.bento_file(broken_dir, "smoke.json")
    tampered = json.loads(smoke.read_text())
    tampered["outputs"] = [p + 0.01 for p in tampered["outputs"]]
    smoke.write_text(json.dumps(tampered))
    broken = Candidate(v2.bento_tag, str(broken_dir), v2.model, "2", v2.lineage)
    before = deployer.deployments.read("staging")
    other = Candidate(v2.bento_tag, v2.bento_path, "churn_model", "1", v2.lineage)  # another pipeline's model
    with pytest.raises(DeploymentError, match="staging serves credit_model; churn_model is another pipeline's"):
        deployer.deploy("staging", other, reason="a second pipeline")
    assert deployer.deployments.read("staging") == before
    with pytest.raises(DeploymentError, match="failed the smoke test in staging: smoke answers differ .* by up to "
                                              "1.00e-02.*the previous deployment keeps serving"):
        deployer.deploy("staging", broken, reason="bad build")
    assert deployer.deployments.read("staging") == before
    assert predict(deployer, "staging").headers["x-mlplatform-model-version"] == "1"
    last = deployer.deployments.audit_entries("staging")[-1]
    assert last["action"] == "automatic_rollback" and last["attempted_version"] == "2"

    crashing_dir = tmp_path / "crashing"
    shutil.copytree(v2.bento_path, crashing_dir)
    service = crashing_dir / "src" / "service.py"
    service.write_text("raise RuntimeError('model store unreachable')\n" + service.read_text())
    crashing = Candidate(v2.bento_tag, str(crashing_dir), v2.model, "2", v2.lineage)
    with pytest.raises(DeploymentError, match="exited with code .* before it was ready"):
        deployer.deploy("staging", crashing, reason="does not start")
    last = deployer.deployments.audit_entries("staging")[-1]
    assert last["action"] == "automatic_rollback" and last["reason"].startswith("health check failed")
    assert deployer.deployments.read("staging") == before and predict(deployer, "staging").status_code == 200

    record = deployer.deployments.record_path("staging")
    good = record.read_text()
    corrupt = record.with_name(".record.json.corrupt")  # replaced in one rename: the router never reads half a file
    corrupt.write_text(good.replace('"strategy": "blue_green"', '"strategy": "sideways"'))
    corrupt.replace(record)
    try:
        with pytest.raises(DeploymentError, match=r"record\.json is invalid \(strategy: Input should be 'blue_green'"):
            deployer.deploy("staging", v2, reason="on a corrupt record")
        state = eventually(lambda: deployer.router_state("staging"),
                           lambda s: s and "strategy: Input should be" in (s["problem"] or ""))
        assert state["sequence"] == before.sequence and "strategy: Input should be" in state["problem"]
        assert predict(deployer, "staging").status_code == 200
        assert deployer.status("staging")["problem"].startswith(f"deployment record {record} is invalid")
    finally:
        record.write_text(good)

    record.unlink()
    with pytest.raises(DeploymentError, match=f"deployment record .* is missing although staging has served record "
                                              f"{before.sequence}"):
        deployer.deploy("staging", v2, reason="on a missing record")
    assert predict(deployer, "staging").headers["x-mlplatform-model-version"] == "1"  # the router kept serving
    recovered = deployer.recover("staging")
    assert recovered.sequence > before.sequence and recovered.primary.pid == before.primary.pid
    assert deployer.deployments.read("staging") == recovered


def test_a_safeguard_switched_off_in_the_environment_stops_the_backend_in_staging(rig, tmp_path):
    """A Bento built for local deployed to staging: MLPLATFORM_VALIDATION=off inherited from the shell is refused
    (the deployer tells the backend where it serves), and what served keeps serving."""
    import os

    deployer, v1, _ = rig
    before = deployer.deployments.read("staging")
    local_dir = tmp_path / "built-for-local"
    shutil.copytree(v1.bento_path, local_dir)
    bento_yaml = local_dir / "bento.yaml"
    bento_yaml.write_text(bento_yaml.read_text().replace("\n  env: staging\n", "\n  env: local\n"))
    local = Candidate(v1.bento_tag, str(local_dir), v1.model, "1", v1.lineage)
    careless = EmbeddedDeployer(deployer.deployments, deployer.bentoml_home, deployer.ports,
                                environ={**os.environ, "MLPLATFORM_VALIDATION": "off"})
    with pytest.raises(DeploymentError, match="MLPLATFORM_VALIDATION=off is refused in staging"):
        careless.deploy("staging", local, reason="validation off")
    assert deployer.deployments.read("staging") == before
    if before is not None:
        assert predict(deployer, "staging").status_code == 200


def test_every_answered_prediction_is_in_the_log_even_after_the_server_is_killed(rig):
    import os
    import signal
    from datetime import UTC, datetime

    from mlplatform.serving.predlog import read_day

    deployer, v1, _ = rig
    record = deployer.deployments.read("staging")
    if record is None or record.strategy != "blue_green":
        record = deployer.deploy("staging", v1, reason="log test")
    answered = {}
    for _ in range(20):
        answer = predict(deployer, "staging")
        answered[answer.json()["request_id"]] = answer.json()["probabilities"]
    os.kill(record.primary.pid, signal.SIGSTOP)  # the arbiter, stopped first: it cannot restart its worker
    for pid in [*children(record.primary.pid), record.primary.pid]:  # the worker that writes, then its arbiter
        os.kill(pid, signal.SIGKILL)  # no shutdown, no flush: what is logged is what was written

    folder = deployer.deployments.predictions_dir("staging")
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    logged = {e["request_id"]: e for e in read_day(folder, day)}
    assert set(answered) <= set(logged)
    # the deploy's smoke test (direct to the backend, then through the router) is logged as smoke, not traffic
    assert {e["role"] for e in logged.values() if e["rows"] == ROWS[:16]} == {"smoke"}  # the smoke set's rows
    for request_id, probabilities in answered.items():
        entry = logged[request_id]
        assert (entry["role"], entry["model_version"], entry["rows"], entry["probabilities"]) == (
            "primary", record.primary.model_version, ROWS[:1], probabilities)

    restarted = deployer.ensure_running("staging")  # a new process for the record, logging on
    assert restarted.primary.pid != record.primary.pid
    more = {predict(deployer, "staging").json()["request_id"] for _ in range(5)}
    assert set(answered) | more <= {e["request_id"] for e in read_day(folder, day)}


def test_when_the_primary_dies_the_standby_answers_at_once_and_serve_restarts_it_keeping_the_standby(rig):
    import os
    import signal

    deployer, v1, v2 = rig
    deployer.deploy("staging", v1, reason="v1 first")
    record = deployer.deploy("staging", v2, reason="then v2")
    assert record.standby is not None and record.standby.model_version == "1"
    os.kill(record.primary.pid, signal.SIGSTOP)  # the arbiter cannot restart its worker
    for pid in [*children(record.primary.pid), record.primary.pid]:
        os.kill(pid, signal.SIGKILL)
    answers = [predict(deployer, "staging") for _ in range(20)]
    assert [a.status_code for a in answers] == [200] * 20  # not one 502: the standby answers at once
    assert {(a.headers["x-mlplatform-answered-by"], a.headers["x-mlplatform-model-version"]) for a in answers} == {
        ("standby", "1")}
    failovers = [e for e in deployer.deployments.audit_entries("staging") if e["action"] == "failover"]
    assert len(failovers) == 1 and failovers[0]["who"] == "router"  # once per record, not per request
    assert "does not answer" in failovers[0]["reason"] and failovers[0]["to"]["model_version"] == "1"
    roles = {b["role"]: b["up"] for b in deployer.status("staging")["backends"]}
    assert roles == {"primary": False, "standby": True}  # and `mlplatform status` exits 1
    restarted = deployer.ensure_running("staging")  # `mlplatform serve --env staging`
    assert restarted.primary.model_version == "2" and restarted.primary.pid != record.primary.pid
    assert restarted.standby is not None and restarted.standby.pid == record.standby.pid  # the standby is kept
    assert predict(deployer, "staging").headers["x-mlplatform-answered-by"] == "primary"


def test_a_torn_last_line_of_a_killed_writer_is_skipped(tmp_path):
    from mlplatform.serving.predlog import PredictionLog, read_day

    log = PredictionLog(tmp_path, "credit_model", "1")
    log.append("a" * 32, ROWS[:1], {"probabilities": [0.25], "labels": [0]}, role="primary")
    answer = {"request_id": "b" * 32, "model": "credit_model", "model_version": "1", "probabilities": [0.5],
              "labels": [1]}
    log.append_raw(json.dumps({"rows": ROWS[:1]}, indent=2).encode(), json.dumps(answer).encode(), "candidate")
    path = next((tmp_path).glob("*/*.jsonl"))
    with path.open("ab") as out:
        out.write(b'{"request_id": "half')  # a write interrupted by a kill: never answered
    first, second = read_day(tmp_path, path.parent.name)
    assert first["request_id"] == "a" * 32 and first["rows"] == ROWS[:1] and first["role"] == "primary"
    assert second == {**answer, "at": second["at"], "role": "candidate", "rows": ROWS[:1]}


def test_a_champion_that_does_worse_live_than_the_one_it_replaced_is_rolled_back_by_the_sensor(
        rig, migrated_mlflow_db):
    import dagster as dg
    from mlflow.tracking import MlflowClient

    from mlplatform.definitions import build_definitions
    from mlplatform.lib.training import tracking
    from mlplatform_tests.conftest import applications, make_settings, serve

    deployer, v1, v2 = rig
    home = deployer.deployments.root.parent  # the rig's folders are a platform home's: bentoml/, deployments/
    ports = {f"MLPLATFORM_{env.upper()}_PORT": str(port) for env, port in deployer.ports.items()}
    settings = make_settings(home, **ports)
    (home / "mlflow").mkdir(exist_ok=True)
    shutil.copyfile(migrated_mlflow_db, home / "mlflow" / "mlflow.db")
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    client.create_registered_model(CREDIT.model_name)
    for v in ("1", "2"):
        client.create_model_version(CREDIT.model_name, source=str(home / f"model-v{v}"))
    deployer.deploy("production", v1, reason="first champion", action="promote",
                    extra={"champion": {"from": None, "to": "1"}})
    tracking.move_champion(client, CREDIT, "1", "test", "first champion")
    before = applications(400, seed=5)
    after = applications(400, seed=6).assign(customer_id=lambda f: f.customer_id + 10**6)
    serve(settings, before, "1", "primary")
    deployer.deploy("production", v2, reason="passed its gates", action="promote",
                    extra={"champion": {"from": "1", "to": "2"}})
    tracking.move_champion(client, CREDIT, "2", "test", "passed its gates")
    assert all(predict(deployer, "production").status_code == 200 for _ in range(5))
    serve(settings, after, "2", "primary", invert=True)  # v2 ranks the new applications backwards

    (home / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(home / "dagster")) as instance:
        defs = build_definitions([CREDIT], settings)
        sensor = defs.resolve_sensor_def("credit_rollback_sensor")

        def tick():  # noqa: ANN202
            return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, resources={
                k: v for k, v in defs.resources.items() if k in sensor.required_resource_keys}))

        assert tick().skip_message.startswith("not enough labelled rows yet to compare v2 (0) with v1 (0)")
        write_frame(pd.concat([before, after]).drop(columns="score"), settings.landing_root / "credit" / "outcomes.csv")
        instance.add_dynamic_partitions("credit_files", ["outcomes"])
        landed = defs.resolve_job_def("credit_ingest_job").execute_in_process(
            instance=instance, partition_key="outcomes",
            asset_selection=[dg.AssetKey(["credit", n]) for n in ("raw", "validated", "labels")])
        assert landed.success
        day = time.strftime("%Y-%m-%d", time.gmtime())
        assert defs.resolve_job_def("credit_monitoring_job").execute_in_process(
            instance=instance, partition_key=day,
            asset_selection=[dg.AssetKey(["credit", n]) for n in ("predictions", "live_performance")]).success
        (request,) = tick().run_requests
        assert request.tags["mlplatform/trigger"] == "live_performance"
        reason = request.tags["mlplatform/reason"]
        assert reason.startswith("live roc_auc of v2 is 0.") and " below v1's 0." in reason
        assert reason.endswith("(tolerance 0.02); v1 serves again")
        rolled = defs.resolve_job_def("credit_rollback_job").execute_in_process(
            instance=instance, run_config=request.run_config, tags=request.tags)
        assert rolled.success
        assert deployer.deployments.read("production").primary.model_version == "1"
        assert predict(deployer, "production").headers["x-mlplatform-model-version"] == "1"
        assert tracking.champion_version(client, CREDIT) == "1"
        entry = deployer.deployments.audit_entries("production")[-1]
        assert (entry["action"], entry["reason"], entry["trigger"]) == ("rollback", reason, "live_performance")
        assert entry["champion"] == {"from": "2", "to": "1"} and entry["run_id"] == rolled.run_id
        (observed,) = instance.fetch_observations(dg.AssetKey(["credit", "production"]), limit=1).records
        assert observed.asset_observation.metadata["reason"].value == reason
        assert tick().skip_message == "production's newest change is not a promotion"
