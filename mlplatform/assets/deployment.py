"""Deployment layer: a gated candidate packaged as a Bento, deployed to staging, then promoted to production."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import dagster as dg

from mlplatform.assets._shared import BENTOML_STORE_POOL, DEPLOY_POOL, DataFrame, key, rebuild_on_change
from mlplatform.code_versions import CHECKOUT, Sources
from mlplatform.deploy.packaging import bento_modules
from mlplatform.orchestration.freshness import unchanged
from mlplatform.resources import BentoStore, DeploymentTarget, MlflowTracking
from mlplatform.settings import requirements
from mlplatform.specs import Spec

GROUP = "deployment"
SMOKE_ROWS = 32


class DeployConfig(dg.Config):
    """How the new version takes traffic: blue_green (all of it, after its checks), canary (`canary_share` of the
    entities, sticky) or shadow (scores a copy of every request, never answers)."""

    strategy: Literal["blue_green", "canary", "shadow"] = "blue_green"
    canary_share: float = 0.1
    reason: str = ""


def observation(spec: Spec, env: str, entry: dict[str, Any]) -> dg.AssetObservation:
    """An audit entry (rollback, strategy change, stop) as an observation on the environment's asset page."""
    metadata = {"action": entry["action"], "who": entry["who"], "reason": entry["reason"],
                "from": dg.MetadataValue.json(entry.get("from") or {}),
                "to": dg.MetadataValue.json(entry.get("to") or {})}
    return dg.AssetObservation(asset_key=key(spec, env), metadata=metadata)


def build(spec: Spec, promotion: str = "manual", sources: Sources = CHECKOUT) -> list[dg.AssetsDefinition]:
    """The gated candidate packaged, served in staging, and (by hand or under automatic promotion) promoted."""
    return [bento_asset(spec, sources), staging_asset(spec, sources), production_asset(spec, promotion, sources)]


def bento_code(sources: Sources, config: object) -> str:
    """The Bento's own code: packaging, the explainer it packs, the serving package, the service, its bentofile and
    the pinned requirements (the lock file of a checkout, else the installed distributions). The
    other modules it ships are versioned where they act (featurize by `features`: unchanged values leave the model
    and its Bento fresh; the router by the environments)."""
    served = (m for m in bento_modules() if m.startswith("mlplatform.serving"))
    lock = ("requirements.lock",) if (sources.root / "requirements.lock").is_file() else ()
    files = ("mlplatform/serving/bento/service.py", "mlplatform/serving/bento/bentofile.yaml", *lock)
    return sources.version("mlplatform.deploy.packaging", "mlplatform.lib.explanations", *served, files=files,
                           config=(config, () if lock else requirements()))


DEPLOYER = tuple(f"mlplatform.deploy.{m}" for m in ("deployer", "embedded", "processes", "records", "router",
                                                    "compose"))


def bento_asset(spec: Spec, sources: Sources) -> dg.AssetsDefinition:
    bento_key = key(spec, "bento")

    @dg.asset(key=bento_key, pool=BENTOML_STORE_POOL, ins={"model": dg.AssetIn(key(spec, "model")),
                                  "evaluation": dg.AssetIn(key(spec, "evaluation")),
                                  "training_set": dg.AssetIn(key(spec, "training_set"))},
              group_name=GROUP, kinds={"bentoml", "docker"},
              code_version=bento_code(sources, spec.gates.decision_threshold),
              automation_condition=rebuild_on_change(partitioned=False), output_required=False)
    def bento(context: dg.AssetExecutionContext, model: DataFrame, evaluation: DataFrame, training_set: DataFrame,
              bentos: BentoStore) -> Iterator:
        """The candidate in the BentoML model store and a Bento (with smoke set, model card and SHAP explainer)
        built from mlplatform/serving/bento with the pinned requirements."""
        if unchanged(context):
            return
        from mlplatform.deploy import packaging
        from mlplatform.deploy.deployer import Candidate

        if not evaluation.passed:  # the blocking checks already stop this; never package a failed candidate
            raise dg.Failure(f"{evaluation.model} v{evaluation.version} failed its gates; nothing is packaged")
        reg, lineage = model.registered, model.lineage
        labels = {"mlflow_model": reg.name, "mlflow_version": reg.version, "dagster_run": context.run.run_id,
                  "data_version": model.training_set_version, "code_version": lineage["dagster.code_version"]}
        metadata = {**labels, "mlflow_run_id": reg.run_id, "git_commit": lineage.get("git.commit", ""),
                    "decision_threshold": spec.gates.decision_threshold, "task": spec.task,
                    **{k: v for k, v in evaluation.metrics.items() if k in ("roc_auc", "accuracy", "rmse")}}
        rows = packaging.holdout_rows(training_set, spec, model.params.holdout_days, SMOKE_ROWS, model.params.seed)
        background = packaging.explainer_background(training_set, spec, model.params.holdout_days, model.params.seed)
        built = packaging.package(spec, model.pipeline, Path(bentos.home), bentos.env, labels, metadata,
                                  smoke_rows=rows, model_card=evaluation.files["model_card"].read_text(),
                                  explainer_background=background, seed=model.params.seed)
        candidate = Candidate(built.tag, str(built.path), reg.name, reg.version,
                              {**labels, "mlflow_run_id": reg.run_id, "git_commit": lineage.get("git.commit", "")})
        yield dg.Output(candidate, data_version=dg.DataVersion(built.tag), metadata={
            "bento_tag": built.tag, "model_tag": built.model_tag, "models": dg.MetadataValue.json([built.model_tag]),
            "size_bytes": built.size_bytes, "path": dg.MetadataValue.path(str(built.path)),
            "dockerfile": dg.MetadataValue.path(str(built.dockerfile)), "smoke_rows": len(rows),
            "registered_model": f"{reg.name} v{reg.version}"})

    return bento


def staging_asset(spec: Spec, sources: Sources) -> dg.AssetsDefinition:
    bento_key, staging_key = key(spec, "bento"), key(spec, "staging")

    @dg.asset(key=staging_key, ins={"bento": dg.AssetIn(bento_key)}, group_name=GROUP, pool=DEPLOY_POOL,
              code_version=sources.version(*DEPLOYER),
              kinds={"bentoml"}, automation_condition=rebuild_on_change(partitioned=False), output_required=False)
    def staging(context: dg.AssetExecutionContext, config: DeployConfig, bento: DataFrame,
                deployment: DeploymentTarget) -> Iterator:
        """Every gated candidate, served in staging once its health and smoke checks pass (else staging keeps
        what it served)."""
        if unchanged(context):
            return
        from mlplatform.deploy.records import DeploymentError

        deployer = deployment.deployer()
        reason = config.reason or f"gated candidate {bento.model} v{bento.model_version} (run {context.run.run_id[:8]})"
        try:
            record = deployer.deploy("staging", bento, config.strategy, config.canary_share, reason)
        except DeploymentError as err:
            raise dg.Failure(str(err), metadata=audit_tail(deployer, "staging")) from err
        yield dg.Output(bento, data_version=dg.DataVersion(bento.bento_tag),
                         metadata=served(deployer, "staging", record) | audit_tail(deployer, "staging"))

    return staging


def production_asset(spec: Spec, promotion: str, sources: Sources) -> dg.AssetsDefinition:
    staging_key, production_key = key(spec, "staging"), key(spec, "production")

    @dg.asset(key=production_key, ins={"staged": dg.AssetIn(staging_key)}, group_name=GROUP, pool=DEPLOY_POOL,
              code_version=sources.version(*DEPLOYER, "mlplatform.deploy.promotion"),
              kinds={"bentoml", "mlflow"},
              automation_condition=rebuild_on_change(partitioned=False) if promotion == "automatic" else None,
              output_required=False)
    def production(context: dg.AssetExecutionContext, config: DeployConfig, staged: DataFrame,
                   deployment: DeploymentTarget, mlflow: MlflowTracking) -> Iterator:
        """The version staging serves (it passed staging's smoke test), promoted: served in production and given
        the MLflow `champion` alias (blue/green; canary and shadow first run next to the champion)."""
        if unchanged(context):
            return
        from mlplatform.deploy.promotion import promote
        from mlplatform.deploy.records import DeploymentError

        deployer = deployment.deployer()
        reason = config.reason or f"promote {staged.model} v{staged.model_version} (run {context.run.run_id[:8]})"
        try:
            record, champion = promote(deployer, mlflow.client(), spec, staged, config.strategy, config.canary_share,
                                       reason)
        except DeploymentError as err:
            raise dg.Failure(str(err), metadata=audit_tail(deployer, "production")) from err
        yield dg.Output(staged, data_version=dg.DataVersion(f"{staged.bento_tag}:{record.strategy}"),
                         metadata=served(deployer, "production", record) | audit_tail(deployer, "production")
                         | {"champion": champion or "none"})

    return production


def served(deployer: Any, env: str, record: Any) -> dict[str, Any]:
    """What the environment serves now, for the asset's metadata."""
    backends = {"primary": record.primary} | ({"candidate": record.candidate} if record.candidate else {})
    return {"url": dg.MetadataValue.url(deployer.router_url(env)), "record": record.sequence,
            "strategy": record.strategy, "canary_share": record.canary_share,
            "serving": dg.MetadataValue.json({role: {"model_version": b.model_version, "bento": b.bento_tag}
                                              for role, b in backends.items()}),
            "api_keys_file": dg.MetadataValue.path(str(deployer.deployments.env_dir(env) / "api-keys")),
            "compose_file": dg.MetadataValue.path(str(deployer.compose_dir(env) / "docker-compose.yaml"))}


def audit_tail(deployer: Any, env: str, limit: int = 10) -> dict[str, Any]:
    """The environment's latest audit entries as a UI table."""
    entries = deployer.deployments.audit_entries(env)[-limit:]
    records = [dg.TableRecord({"at": e["at"], "who": e["who"], "action": e["action"],
                               "from": str((e.get("from") or {}).get("model_version", "—")),
                               "to": str((e.get("to") or {}).get("model_version", "—")), "reason": e["reason"][:200]})
               for e in reversed(entries)]
    columns = [dg.TableColumn(c, "string") for c in ("at", "who", "action", "from", "to", "reason")]
    return {"audit": dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))}
