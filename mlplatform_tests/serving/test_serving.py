"""The model service, in process through `to_asgi()`, built as a real Bento from `mlplatform/serving/bento/`."""

import json
import sys

import pandas as pd
import pytest

from mlplatform.deploy import packaging
from mlplatform.deploy.processes import free_port
from mlplatform.lib.data.demo import credit_day
from mlplatform.lib.features.featurize import featurize
from mlplatform.lib.training.train import TrainParams, fit
from mlplatform.serving import auth
from mlplatform.serving import settings as serving_settings
from mlplatform.serving.request import MAX_ROWS
from mlplatform.serving.scorer import Scorer
from mlplatform.serving.settings import ServingSettings
from mlplatform_tests.conftest import ROW
from mlplatform_tests.pipelines import CREDIT

pytestmark = pytest.mark.usefixtures("same_utc_day")  # logs filed by UTC day, read back as today


@pytest.fixture(scope="module")
def online_rows(tmp_path_factory):
    """A real Feast online store holding the features of 40 customers; the service reads it (predict_entity)."""
    import os
    from pathlib import Path

    from mlplatform.lib.features import online
    from mlplatform.resources import FeastStore

    folder = tmp_path_factory.mktemp("feast")
    raw = credit_day(5, 40)
    raw[CREDIT.timestamp] = pd.to_datetime(raw[CREDIT.timestamp], utc=True)
    frame = featurize(raw, CREDIT).drop_duplicates(CREDIT.entity, keep="last")
    feast = FeastStore(feast_dir=str(folder), repo_path=str(Path(__file__).resolve().parents[2] / "feature_repo"))
    online.write_offline(frame, feast.offline_dir(CREDIT), "2026-01-06")
    feast.apply(CREDIT)
    online.write_online(feast.store(), CREDIT, frame)
    os.environ["MLPLATFORM_FEAST_DIR"] = str(folder)
    yield frame
    os.environ.pop("MLPLATFORM_FEAST_DIR", None)


@pytest.fixture(scope="module")
def service(tmp_path_factory, online_rows):
    """One built Bento served in process (BentoML's metrics registry allows one app per process)."""
    import bentoml
    from bentoml._internal.configuration.containers import BentoMLContainer
    from starlette.testclient import TestClient

    home = tmp_path_factory.mktemp("bentoml")
    for sub in ("tmp", "models", "bentos"):
        (home / sub).mkdir()
    BentoMLContainer.bentoml_home.set(str(home))
    raw = pd.concat([credit_day(d, 500) for d in range(4)], ignore_index=True)
    frame = featurize(raw, CREDIT).assign(**{CREDIT.label: raw[CREDIT.label]})
    pipeline, _, _ = fit(frame, CREDIT, TrainParams("logistic_regression", 1.0, 200, 42, 2))
    tag = packaging.save_model(CREDIT, pipeline, {"mlflow_version": "3"},
                               {"mlflow_version": "3", "decision_threshold": 0.3})
    explainer = packaging.explainer_file(pipeline, CREDIT, packaging.explainer_background(frame, CREDIT, 2, 42), 42)
    built = packaging.build(CREDIT, tag, packaging.stage_context(home / "context",
                                                                 extra_files={"explainer.json": explainer}),
                            "local", {"mlflow_version": "3"})
    with TestClient(bentoml.load(str(built.path)).to_asgi()) as client:
        yield client, pipeline, built


def test_the_bento_records_the_model_and_a_dockerfile_with_the_bentoml_entrypoint(service):
    _, _, built = service
    assert built.model_tag.startswith("credit_model:") and built.size_bytes > 0
    dockerfile = built.dockerfile.read_text()
    assert "python:3.11" in dockerfile or "PYTHON_VERSION=3.11" in dockerfile.replace('"', "")
    assert 'ENTRYPOINT [ "/home/bentoml/bento/env/docker/entrypoint.sh" ]' in dockerfile
    assert "credit_model" in (built.path / "bento.yaml").read_text()


def test_predict_answers_like_the_trained_pipeline_with_version_and_request_id(service):
    client, pipeline, _ = service
    rows = [ROW, {**ROW, "num_late_payments": 4, "credit_utilization": 1.1}]
    answer = client.post("/predict", json={"rows": rows})
    assert answer.status_code == 200
    body = answer.json()
    expected = pipeline.predict_proba(featurize(pd.DataFrame(rows), CREDIT, keys=False)[CREDIT.feature_names])[:, 1]
    assert body["probabilities"] == pytest.approx(expected.round(6).tolist())
    assert body["labels"] == [int(p >= 0.3) for p in expected]
    assert body["model_version"] == "3" and len(body["request_id"]) == 32


def test_explain_gives_each_features_contribution_adding_up_to_the_answered_probability(service):
    from scipy.special import expit

    client, pipeline, _ = service
    rows = [ROW, {**ROW, "num_late_payments": 6, "purpose": "medical"}]
    answer = client.post("/explain", json={"rows": rows})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["method"], body["unit"], body["outputs"], body["model_version"]) == ("linear", "log_odds", ["1"], "3")
    predicted = client.post("/predict", json={"rows": rows}).json()["probabilities"]
    for contributions, probability in zip(body["contributions"], predicted, strict=True):
        assert list(contributions["1"]) == list(CREDIT.feature_names)  # categories one contribution each
        assert expit(body["base"]["1"] + sum(contributions["1"].values())) == pytest.approx(probability, abs=2e-6)
    late = [c["1"]["num_late_payments"] for c in body["contributions"]]
    assert late[1] > late[0]  # late payments raise the risk of default
    assert body["contributions"][0]["1"]["age"] == body["contributions"][1]["1"]["age"]  # same age, same part


def test_explain_validates_rows_like_predict_and_bounds_their_number(service):
    from mlplatform.serving.explain import MAX_EXPLAIN_ROWS

    client, _, _ = service
    bad = client.post("/explain", json={"rows": [{**ROW, "purpose": "castle"}]})
    assert bad.status_code == 400 and bad.json()["detail"][0]["loc"] == ["rows", 0, "purpose"]
    many = client.post("/explain", json={"rows": [ROW] * (MAX_EXPLAIN_ROWS + 1)})
    assert many.status_code == 400 and f"at most {MAX_EXPLAIN_ROWS} items" in many.text
    assert client.post("/explain", json={"rows": [ROW] * MAX_EXPLAIN_ROWS}).status_code == 200
    schema = client.get("/docs.json").json()
    answer = schema["paths"]["/explain"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert {"method", "unit", "outputs", "base", "contributions"} <= set(answer["properties"])
    assert answer["properties"]["unit"]["enum"] == ["probability", "log_odds", "value"]


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"age": 150}, "age", "less than or equal to 100"),
    ({"purpose": "castle"}, "purpose", "Input should be 'debt_consolidation'"),
    ({"income": "lots"}, "income", "valid number"),
    ({"notes": "x"}, "notes", "Extra inputs are not permitted"),
    ({"loan_amount": None}, "loan_amount", "valid number"),
])
def test_a_bad_field_gets_a_400_naming_it(service, change, field, message):
    client, _, _ = service
    answer = client.post("/predict", json={"rows": [ROW, {**ROW, **change}]})
    assert answer.status_code == 400
    (detail,) = answer.json()["detail"]
    assert detail["loc"] == ["rows", 1, field] and message in detail["msg"]


def test_missing_fields_too_many_rows_and_broken_json_are_400s(service):
    client, _, _ = service
    missing = client.post("/predict", json={"rows": [{k: v for k, v in ROW.items() if k != "income"}]})
    assert missing.status_code == 400 and missing.json()["detail"][0]["loc"] == ["rows", 0, "income"]
    many = client.post("/predict", json={"rows": [ROW] * (MAX_ROWS + 1)})
    assert many.status_code == 400 and "at most 1000 items" in many.json()["detail"][0]["msg"]
    broken = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and broken.json()["detail"][0]["type"] == "json_invalid"


def test_a_body_over_the_size_limit_is_a_413(service):
    client, _, _ = service
    answer = client.post("/predict", content=b"x" * (auth.MAX_BODY_BYTES + 1),
                         headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "exceeds the limit" in answer.json()["error"]
    chunks = (b"x" * 100_000 for _ in range(auth.MAX_BODY_BYTES // 100_000 + 1))  # no content-length: chunked
    chunked = client.post("/predict", content=chunks, headers={"content-type": "application/json"})
    assert chunked.status_code == 413 and "exceeds the limit" in chunked.json()["error"]
    small = client.post("/predict", content=(c for c in [b'{"rows": [', json.dumps(ROW).encode(), b"]}"]),
                        headers={"content-type": "application/json"})
    assert small.status_code == 200 and len(small.json()["probabilities"]) == 1


def test_the_hot_path_answers_exactly_like_bentomls_own_api_dispatch(service):
    import sys

    client, _, _ = service
    target = sys.modules["service"].HOT  # the service module of the loaded Bento
    rows = [ROW, {**ROW, "age": 61, "purpose": "medical"}]
    bad = [ROW, {**ROW, "age": 150}]
    answers, answered_by_hot_path = {}, {}
    for hot in (True, False):
        target.enabled, before = hot, target.batcher.requests
        try:
            good, rejected = client.post("/predict", json={"rows": rows}), client.post("/predict", json={"rows": bad})
        finally:
            target.enabled = True
        answered_by_hot_path[hot] = target.batcher.requests - before
        answers[hot] = (good.status_code, {k: v for k, v in good.json().items() if k != "request_id"},
                        rejected.status_code, rejected.json())
    assert answers[True] == answers[False]
    assert answers[True][0] == 200 and answers[True][2] == 400
    assert answered_by_hot_path == {True: 1, False: 0}  # the valid request went through the hot path, then not


def test_concurrent_requests_are_scored_in_one_model_call_with_the_same_answers(service):
    import asyncio

    from mlplatform.serving.hotpath import MicroBatcher

    _, pipeline, _ = service
    batcher = MicroBatcher(Scorer(pipeline, CREDIT))
    requests = [[{**ROW, "age": 20 + i}] * (1 + i % 3) for i in range(12)]

    async def together():
        return await asyncio.gather(*(batcher.output(rows) for rows in requests))

    answers = asyncio.run(together())
    assert batcher.batches == 1 and batcher.requests == 12
    for rows, answer in zip(requests, answers, strict=True):
        alone = pipeline.predict_proba(featurize(pd.DataFrame(rows), CREDIT, keys=False)[CREDIT.feature_names])
        assert abs(answer - alone[:, 1]).max() < 1e-12


@pytest.mark.parametrize("estimator", ["logistic_regression", "gradient_boosting", "constant"])
def test_the_compiled_scorer_matches_the_pipeline_on_every_row(estimator):
    raw = pd.concat([credit_day(d, 400) for d in range(3)], ignore_index=True)
    frame = featurize(raw, CREDIT).assign(**{CREDIT.label: raw[CREDIT.label]})
    pipeline, _, _ = fit(frame, CREDIT, TrainParams(estimator, 1.0, 50, 42, 1))
    scorer = Scorer(pipeline, CREDIT)
    rows = raw[CREDIT.contract_feature_names].to_dict("records")
    rows[0] = {**rows[0], "income": 0.0}  # zero denominator of loan_to_income
    expected = pipeline.predict_proba(featurize(pd.DataFrame(rows), CREDIT, keys=False)[CREDIT.feature_names])[:, 1]
    assert scorer.compiled
    assert abs(scorer.output(rows) - expected).max() < 1e-12
    assert abs(scorer.output(rows[:1]) - expected[:1]).max() < 1e-12


def test_a_pipeline_of_another_shape_is_scored_through_the_pipeline_itself():
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, OrdinalEncoder

    raw = pd.concat([credit_day(d, 300) for d in range(2)], ignore_index=True)
    x = featurize(raw, CREDIT, keys=False)[CREDIT.feature_names]
    numeric = [n for n in CREDIT.feature_names if n not in CREDIT.categorical_feature_names]
    pipeline = Pipeline([("pre", ColumnTransformer([("n", MinMaxScaler(), numeric),
                                                    ("c", OrdinalEncoder(), CREDIT.categorical_feature_names)])),
                         ("model", LogisticRegression(max_iter=500))]).fit(x, raw[CREDIT.label])
    scorer = Scorer(pipeline, CREDIT)
    rows = raw[CREDIT.contract_feature_names].head(50).to_dict("records")
    assert not scorer.compiled
    assert abs(scorer.output(rows) - pipeline.predict_proba(x.head(50))[:, 1]).max() < 1e-12


def test_safeguards_cannot_be_switched_off_outside_local():
    assert not serving_settings.switch("validation", "local", {"MLPLATFORM_VALIDATION": "off"})
    for name in ("validation", "metrics"):
        with pytest.raises(ValueError, match=f"MLPLATFORM_{name.upper()}=off is refused in staging"):
            serving_settings.switch(name, "staging", {f"MLPLATFORM_{name.upper()}": "off"})
    with pytest.raises(ValueError, match="expected on or off"):
        serving_settings.switch("tracing", "local", {"MLPLATFORM_TRACING": "maybe"})
    # a Bento built for local but deployed to staging (the deployer sets MLPLATFORM_ENV): the safeguards hold
    assert not ServingSettings.from_env("local", {"MLPLATFORM_VALIDATION": "off"}).validation
    for env in ("staging", "production"):
        with pytest.raises(ValueError, match=f"MLPLATFORM_VALIDATION=off is refused in {env}"):
            ServingSettings.from_env("local", {"MLPLATFORM_ENV": env, "MLPLATFORM_VALIDATION": "off"})
        with pytest.raises(ValueError, match=f"MLPLATFORM_AUTH=off is refused in {env}"):
            ServingSettings.from_env("local", {"MLPLATFORM_ENV": env, "MLPLATFORM_AUTH": "off"})
    with pytest.raises(ValueError, match="MLPLATFORM_METRICS=off is refused in production"):
        ServingSettings.from_env("production", {"MLPLATFORM_ENV": "local", "MLPLATFORM_METRICS": "off"})
    config = ServingSettings.from_env("production", {}).service_config(("/predict",))
    assert config["tracing"] == {"excluded_urls": ["/predict"]} and config["logging"]["access"]["enabled"] is False


def test_predict_entity_scores_the_online_features_of_known_ids_and_names_unknown_ones(service, online_rows):
    client, pipeline, _ = service
    ids = online_rows[CREDIT.entity].head(5).tolist()
    answer = client.post("/predict_entity", json={"entity_ids": ids})
    assert answer.status_code == 200, answer.text
    expected = pipeline.predict_proba(online_rows.head(5)[CREDIT.feature_names])[:, 1]
    assert answer.json()["probabilities"] == pytest.approx(expected.round(6).tolist())
    unknown = client.post("/predict_entity", json={"entity_ids": [ids[0], 987654321, 987654322]})
    assert unknown.status_code == 404
    assert unknown.json() == [{"error": "unknown customer_id (no features in the online store): 987654321, 987654322"}]
    bad = client.post("/predict_entity", json={"entity_ids": [ids[0], "x"]})
    assert bad.status_code == 400 and bad.json()["detail"][0]["loc"] == ["entity_ids", 1]
    assert client.post("/predict_entity", json={"entity_ids": []}).status_code == 400


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"age": "30"}, "age", "JSON number"),
    ({"age": True}, "age", "JSON number"),
    ({"age": 30.5}, "age", "fractional part"),
    ({"income": "5e4"}, "income", "valid number"),
    ({"credit_utilization": True}, "credit_utilization", "valid number"),
])
def test_strings_and_booleans_are_not_numbers(service, change, field, message):
    client, _, _ = service
    target = sys.modules["service"].HOT  # the service module of the loaded Bento
    for hot in (True, False):  # the hot path and BentoML's own dispatch validate alike
        target.enabled = hot
        try:
            answer = client.post("/predict", json={"rows": [{**ROW, **change}]})
        finally:
            target.enabled = True
        assert answer.status_code == 400, (hot, answer.text)
        (detail,) = answer.json()["detail"]
        assert detail["loc"] == ["rows", 0, field] and message in detail["msg"]
    assert client.post("/predict", json={"rows": [{**ROW, "age": 30.0}]}).status_code == 200  # integral: an int


def test_entity_ids_are_json_integers_a_store_can_hold(service, online_rows):
    client, _, _ = service
    known = int(online_rows[CREDIT.entity].iloc[0])
    for ids in ([True], [2**63], [2**70], ["3"], [-1]):
        answer = client.post("/predict_entity", json={"entity_ids": ids})
        assert answer.status_code == 400, (ids, answer.status_code, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["entity_ids", 0]
        logged = client.post("/predict", json={"rows": [ROW], "entity_ids": ids})
        assert logged.status_code == 400 and logged.json()["detail"][0]["loc"] == ["entity_ids", 0]
    assert client.post("/predict_entity", json={"entity_ids": [known]}).status_code == 200


@pytest.mark.parametrize("path", ["/predict", "/predict_entity", "/info"])
def test_a_body_that_is_not_json_is_a_415_not_a_server_error(service, path):
    client, _, _ = service
    for content_type in ("multipart/form-data", "text/plain", "application/x-www-form-urlencoded"):
        answer = client.post(path, content=b'{"rows": []}', headers={"content-type": content_type})
        assert answer.status_code == 415, (content_type, answer.status_code, answer.text)
        assert "send the body as JSON with content-type application/json" in answer.json()["error"]
    assert client.post(path, content=b"{}", headers={"content-type": "application/json; charset=utf-8"}
                       ).status_code != 415


def test_a_bad_request_is_one_log_line_not_a_traceback(service, caplog):
    import logging

    from mlplatform.serving.logs import HTTP_APP_LOGGER

    client, _, _ = service
    with caplog.at_level(logging.ERROR, logger=HTTP_APP_LOGGER):
        assert client.post("/predict_entity", json={"entity_ids": ["x"]}).status_code == 400
        assert client.post("/predict_entity", json={"entity_ids": [987654321]}).status_code == 404
    records = [r for r in caplog.records if r.name == HTTP_APP_LOGGER]
    assert len(records) == 2 and all(r.exc_info is None and r.exc_text is None for r in records)
    first, second = (r.getMessage() for r in records)
    assert first.startswith("Exception on /predict_entity [POST]: 400 ValidationError: 1 validation error")
    assert second.startswith("Exception on /predict_entity [POST]: 404 NotFound: unknown customer_id")
    assert "\n" not in first + second


def test_info_names_the_served_version_and_health_is_open(service):
    client, _, built = service
    info = client.post("/info", json={}).json()
    assert info["model_version"] == "3" and info["bento_model"] == built.model_tag
    assert client.get("/livez").status_code == 200


def test_api_keys_compare_in_constant_time_and_auth_cannot_be_disabled_outside_local(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# one per line\nsecond-key\n")
    keys = serving_settings.load_api_keys({"MLPLATFORM_API_KEYS": "first-key",
                                           "MLPLATFORM_API_KEYS_FILE": str(keys_file)})
    assert auth.key_matches("second-key", keys) and not auth.key_matches("second-ke", keys)
    assert not auth.key_matches(None, keys)
    assert serving_settings.auth_required("staging", {}) and not serving_settings.auth_required("local", {})
    with pytest.raises(ValueError, match="MLPLATFORM_AUTH=off is refused in production"):
        serving_settings.auth_required("production", {"MLPLATFORM_AUTH": "off"})


@pytest.mark.e2e
@pytest.mark.parametrize("hot_path", ["on", "off"])  # off: BentoML's own API dispatch answers /predict
def test_a_real_bentoml_serve_of_the_built_bento_answers_behind_its_api_key(service, tmp_path, hot_path):
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    _, pipeline, built = service
    port, secret = free_port(), "s3cret-key-for-test"
    home = built.path.parents[2]
    env = {**os.environ, "BENTOML_HOME": str(home), "MLPLATFORM_AUTH": "on", "MLPLATFORM_API_KEYS": secret,
           "BENTOML_DO_NOT_TRACK": "True", "MLPLATFORM_PREDICTION_LOG_DIR": str(tmp_path / "predictions"),
           "MLPLATFORM_HOT_PATH": hot_path}
    server = subprocess.Popen([str(Path(sys.executable).with_name("bentoml")), "serve", str(built.path),
                               "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline, ready = time.monotonic() + 180, False
        while not ready and time.monotonic() < deadline and server.poll() is None:
            try:
                ready = httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                pass
            if not ready:
                time.sleep(0.5)
        assert server.poll() is None, "bentoml serve exited"
        assert ready, "bentoml serve was not ready within 180 s"
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.post("/predict", json={"rows": [ROW]}).status_code == 401
            assert client.post("/predict", json={"rows": [ROW]}, headers={"x-api-key": "wrong"}).status_code == 401
            answer = client.post("/predict", json={"rows": [ROW]}, headers={"x-api-key": secret})
            assert answer.status_code == 200 and secret not in answer.text
            expected = pipeline.predict_proba(featurize(pd.DataFrame([ROW]), CREDIT, keys=False)[CREDIT.feature_names])
            assert answer.json()["probabilities"] == pytest.approx([round(float(expected[0, 1]), 6)])
            bad = client.post("/predict", json={"rows": [{**ROW, "age": 7}]}, headers={"x-api-key": secret})
            assert bad.status_code == 400 and bad.json()["detail"][0]["loc"] == ["rows", 0, "age"]
            assert client.get("/livez").status_code == 200
            assert client.post("/explain", json={"rows": [ROW]}).status_code == 401
            explanation = client.post("/explain", json={"rows": [ROW]}, headers={"x-api-key": secret},
                                      timeout=60)  # the first explanation loads SHAP
            assert explanation.status_code == 200 and explanation.json()["method"] == "linear"
            metrics = client.get("/metrics")
            assert metrics.status_code == 200 and "bentoml_service_request_total" in metrics.text
            from prometheus_client.parser import text_string_to_metric_families

            samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                       for family in text_string_to_metric_families(metrics.text) for s in family.samples}
            served = (("model", "credit_model"), ("model_version", "3"))
            assert samples[("mlplatform_predictions_total", (*served, ("predicted_class", "0")))] == 1.0
            assert samples[("mlplatform_request_rows_count", served)] == 1.0
            # rows may name their entities (one id per row): the log keeps them for the labels that land later
            named = client.post("/predict", json={"rows": [ROW, ROW], "entity_ids": [41, 42]},
                                headers={"x-api-key": secret})
            assert named.status_code == 200 and len(named.json()["probabilities"]) == 2
            uneven = client.post("/predict", json={"rows": [ROW, ROW], "entity_ids": [41]},
                                 headers={"x-api-key": secret})
            assert uneven.status_code == 400
            assert "entity_ids: 1 ids for 2 rows; give one id per row" in uneven.text
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode(errors="replace")
    assert secret not in output
    from mlplatform.serving.predlog import day_frame

    day = time.strftime("%Y-%m-%d", time.gmtime())
    logged = day_frame({"staging": tmp_path / "predictions"}, day, CREDIT)
    assert logged["request_id"].nunique() == 2  # the two answered requests; refused ones are not logged
    assert logged["customer_id"].tolist() == [pd.NA, 41, 42]
