"""Commands for serving: serve, status, promote, rollback, audit, stop."""

import os
import sys
from typing import Annotated

import typer

from mlplatform.cli._common import (
    ENV_HELP,
    PIPELINE_HELP,
    app,
    check_env,
    definitions,
    env_deployer,
    fail,
    quiet,
    spec_named,
)
from mlplatform.settings import get_settings


@app.command()
def serve(
    env: Annotated[str,
                   typer.Option(help="local (the newest Bento, in the foreground), staging or production.")] = "local",
    port: Annotated[int, typer.Option(help="Port for --env local.")] = 3000,
    recover: Annotated[bool,
                       typer.Option(help="Serve the last valid record again (record.json lost or damaged).")] = False,
) -> None:
    """Serve: staging/production are (re)started from their deployment record behind their router; local runs the
    newest Bento in the foreground."""
    from mlplatform.deploy.records import DeploymentError

    if env == "local":
        settings = get_settings()
        settings.export()
        bentos = sorted((settings.bentoml_home / "bentos").glob("*/*/bento.yaml"), key=lambda p: p.stat().st_mtime)
        if not bentos:
            fail(RuntimeError(f"no Bento under {settings.bentoml_home}: run `mlplatform demo` or the training job"))
        os.execv(sys.executable, [sys.executable, "-m", "bentoml", "serve", str(bentos[-1].parent), "--host",
                                  "127.0.0.1", "--port", str(port)])
    deployer = env_deployer()
    try:
        (deployer.recover if recover else deployer.ensure_running)(check_env(env))
    except DeploymentError as err:
        fail(err)
    _print_status(deployer.status(env))


def _print_status(s: dict) -> None:
    problem = f"  PROBLEM: {s['problem']}" if s["problem"] else ""
    typer.echo(f"{s['env']:11} {s['url']}  router {s['router']}{problem}")
    if s.get("deployed", True) is None:
        typer.echo("            nothing deployed")
        return
    typer.echo(f"            record {s['sequence']}, {s['strategy']}"
               + (f" ({s['canary_share']:.0%} to the candidate)" if s["strategy"] == "canary" else "")
               + f", since {s['since']} by {s['by']}: {s['reason']}")
    for b in s["backends"]:
        typer.echo(f"            {b['role']:9} {b['model']} v{b['model_version']}  {b['bento']}  port {b['port']}"
                   f"  {'up' if b['up'] else 'DOWN'}")
    typer.echo(f"            API keys: {s['api_keys_file']} (header x-api-key)")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """What serves where: per environment the router, the record, the strategy and each backend's version. Exits 1
    when something deployed is down (a router, a primary or candidate backend) or a record has a problem."""
    import json

    deployer = env_deployer()
    states = [deployer.status(env) for env in ("staging", "production")]
    if as_json:
        typer.echo(json.dumps(states, indent=2))
    else:
        for state in states:
            _print_status(state)
    raise typer.Exit(1 if any(_down(s) for s in states) else 0)


def _down(state: dict) -> bool:
    """A deployed environment whose router or a serving backend (not the standby) is down, or whose record is bad."""
    if state.get("deployed", True) is None:
        return bool(state["problem"])
    serving = [b for b in state["backends"] if b["role"] in ("primary", "candidate")]
    return bool(state["problem"]) or state["router"] != "up" or not all(b["up"] for b in serving)


@app.command()
def promote(
    strategy: Annotated[str, typer.Option(
                            help="blue_green (all traffic, becomes champion), canary or shadow.")] = "blue_green",
    canary_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of entities for a canary.")] = 0.1,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
    spec: Annotated[str | None, typer.Option("--pipeline", "--spec", help=PIPELINE_HELP)] = None,
) -> None:
    """Promote what staging serves to production (runs the promote job); blue/green moves the `champion` alias."""
    from mlplatform.orchestration import runner

    if strategy not in ("blue_green", "canary", "shadow"):
        raise typer.BadParameter(f"{strategy!r}: expected blue_green, canary or shadow", param_hint="--strategy")
    settings = get_settings()
    settings.export()
    with quiet() as log_level:
        ok, text = runner.promote(definitions(), spec_named(spec), strategy, canary_share, reason, log_level)
    typer.echo(text, err=not ok)
    raise typer.Exit(0 if ok else 1)


@app.command()
def rollback(
    env: Annotated[str, typer.Argument(help=ENV_HELP)],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
    spec: Annotated[str | None, typer.Option("--pipeline", "--spec", help=PIPELINE_HELP)] = None,
) -> None:
    """Serve the environment's previous deployment again; in production its version gets the `champion` alias back."""
    from mlplatform.definitions import resources
    from mlplatform.deploy import promotion
    from mlplatform.deploy.records import DeploymentError
    from mlplatform.orchestration import runner

    deployer, chosen = env_deployer(), spec_named(spec)
    try:
        record = promotion.rollback(deployer, resources(get_settings())["mlflow"].client(), chosen, check_env(env),
                                    reason)
    except DeploymentError as err:
        fail(err)
    runner.observe(chosen, env, deployer.deployments.audit_entries(env)[-1])
    typer.echo(f"{env} serves {record.primary.model} v{record.primary.model_version} again (record {record.sequence})")


@app.command()
def audit(
    env: Annotated[str | None, typer.Option(help="Only this environment.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="The newest N entries.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The audit log: every deployment, promotion, rollback and strategy change (who, when, why, from/to)."""
    import json

    entries = env_deployer().deployments.audit_entries(check_env(env) if env else None)[-limit:]
    for e in entries:
        if as_json:
            typer.echo(json.dumps(e, sort_keys=True))
            continue
        version = lambda side: f"v{side['model_version']}" if side else "—"  # noqa: E731
        champion = f"  champion {e['champion']['from'] or '—'} → {e['champion']['to']}" if e.get("champion") else ""
        typer.echo(f"{e['at']}  {e['env']:10} {e['action']:18} {version(e['from']):>4} → {version(e['to']):<4} "
                   f"by {e['who']}{champion}: {e['reason']}")


@app.command()
def stop(env: Annotated[str, typer.Argument(help=ENV_HELP)]) -> None:
    """Stop the environment's router and backends (the record stays: `mlplatform serve --env ENV` restarts them)."""
    env_deployer().stop_env(check_env(env))
    typer.echo(f"{env} stopped")
