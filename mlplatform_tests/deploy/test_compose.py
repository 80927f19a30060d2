"""The container deployment: a compose project generated from a deployment record, and its validation."""

import json

import pytest
import yaml

from mlplatform.deploy.compose import ComposeError, validate, write_project
from mlplatform.deploy.records import Backend, Deployments, Record


def record(strategy: str = "canary") -> Record:
    one = Backend(bento_tag="credit_service:aaa111", bento_path="/x/aaa111", model="credit_model", model_version="1",
                  port=41001, pid=1234, lineage={"mlflow_run_id": "r1"})
    two = one.model_copy(update={"bento_tag": "credit_service:bbb222", "model_version": "2", "port": 41002})
    return Record(env="production", sequence=7, strategy=strategy, primary=one, candidate=two, canary_share=0.2,
                  created_at="2026-12-02T10:00:00+00:00", created_by="ops", reason="try v2")


def test_a_canary_record_becomes_a_compose_project_the_router_in_it_can_follow(tmp_path):
    keys = Deployments(tmp_path / "deployments").api_keys_file("production")
    path = write_project(record(), keys, tmp_path / "compose", host_port=3200)
    document = yaml.safe_load(path.read_text())
    services = document["services"]
    assert set(services) == {"primary", "candidate", "router"}
    assert services["primary"]["image"] == "credit_service:aaa111"
    assert services["candidate"]["image"] == "credit_service:bbb222"
    assert services["router"]["ports"] == ["127.0.0.1:3200:3000"]
    assert services["router"]["depends_on"] == {"primary": {"condition": "service_healthy"},
                                                "candidate": {"condition": "service_healthy"}}
    assert "/readyz" in " ".join(services["primary"]["healthcheck"]["test"])
    assert document["secrets"]["api_keys"]["file"] == str(keys.resolve())
    key = [line for line in keys.read_text().splitlines() if not line.startswith("#")][0]
    assert key not in path.read_text()  # the key is referenced as a secret, never copied
    routed = Record.model_validate_json(
        (tmp_path / "compose" / "deployments" / "production" / "record.json").read_text())
    assert (routed.primary.host, routed.primary.port, routed.candidate.host) == ("primary", 3000, "candidate")
    assert routed.canary_share == 0.2 and routed.strategy == "canary"
    assert "bentoml containerize credit_service:bbb222 -t credit_service:bbb222" in (
        tmp_path / "compose" / "build-images.sh").read_text()
    assert json.dumps(validate(path)["services"]["router"]["entrypoint"]).count("mlplatform.deploy.router") == 1


@pytest.mark.parametrize(("edit", "message"), [
    (("interval: 5s", "interval: soon"), "services.primary.healthcheck.interval: duration `soon`"),
    (("image: credit_service:bbb222", "imag: credit_service:bbb222"), "extension key `imag`"),
    (("127.0.0.1:3200:3000", "3200:3000"), "services.router.ports: 3200:3000 is published beyond loopback"),
    (("candidate:\n        condition", "canddate:\n        condition"),
     "services.router.depends_on: no service 'canddate'"),
])
def test_an_edited_compose_file_that_would_not_run_is_refused_naming_the_field(tmp_path, edit, message):
    keys = Deployments(tmp_path / "deployments").api_keys_file("production")
    path = write_project(record(), keys, tmp_path / "compose", host_port=3200)
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ComposeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(path)
