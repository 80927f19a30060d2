"""Promotion and rollback: what production serves and which registered version holds the `champion` alias
move together, and the audit log records both."""

from typing import Any

from mlplatform.deploy.deployer import Candidate, Deployer
from mlplatform.deploy.records import DeploymentError, Record, who
from mlplatform.lib.training import tracking
from mlplatform.specs import Spec


def promote(deployer: Deployer, client: Any, spec: Spec, staged: Candidate, strategy: str = "blue_green",
            canary_share: float = 0.1, reason: str = "") -> tuple[Record, str | None]:
    """Deploy what staging serves to production; under blue/green it becomes the champion.

    Returns the production record and the champion afterwards. Refuses a version staging does not serve (its
    smoke test in staging is what production relies on).
    """
    in_staging = deployer.deployments.read("staging")
    if in_staging is None or staged.bento_tag not in {b.bento_tag for b in in_staging.backends()}:
        serving = in_staging.primary.bento_tag if in_staging else "nothing"
        raise DeploymentError(f"{staged.bento_tag} ({staged.model} v{staged.model_version}) is not what staging "
                              f"serves ({serving}); only a version that passed staging's smoke test is promoted")
    old = tracking.champion_version(client, spec)
    if strategy != "blue_green":  # the candidate runs next to the champion; the alias moves when it takes over
        record = deployer.deploy("production", staged, strategy, canary_share, reason, action="deploy",
                                 extra={"champion": {"from": old, "to": old}})
        return record, old
    record = deployer.deploy("production", staged, "blue_green", 0.0, reason, action="promote",
                             extra={"champion": {"from": old, "to": staged.model_version}})
    tracking.move_champion(client, spec, staged.model_version, who(), reason)
    return record, staged.model_version


def rollback(deployer: Deployer, client: Any, spec: Spec, env: str, reason: str,
             extra: dict[str, Any] | None = None) -> Record:
    """Serve the environment's previous deployment again; in production its version gets the alias back."""
    if env != "production":
        return deployer.rollback(env, reason, extra)
    restored = deployer.previous(env).primary.model_version
    champion = {"from": tracking.champion_version(client, spec), "to": restored}
    record = deployer.rollback(env, reason, {"champion": champion, **(extra or {})})
    tracking.move_champion(client, spec, restored, who(), f"rollback: {reason}")
    return record
