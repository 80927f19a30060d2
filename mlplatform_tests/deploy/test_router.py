"""The router's own endpoint shows where it runs from (home, pid) only to a key of its environment."""

from mlplatform.deploy.records import Deployments
from mlplatform.deploy.router import Router


def test_the_router_state_names_paths_only_to_a_key_of_its_environment(tmp_path):
    deployments = Deployments(tmp_path / "deployments")
    key = deployments.api_keys_file("staging").read_text().split()[-1]
    router = Router(deployments, "staging")
    public = router.state({})
    assert public == {"env": "staging", "sequence": None, "strategy": None}
    assert router.state({b"x-api-key": b"not-the-key"}) == public
    full = router.state({b"x-api-key": key.encode()})
    assert full["root"] == str(deployments.root) and full["pid"] > 0 and "problem" in full
    production = deployments.api_keys_file("production").read_text().split()[-1]
    assert router.state({b"x-api-key": production.encode()}) == public  # another environment's key
