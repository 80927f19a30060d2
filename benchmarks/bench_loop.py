"""The loop's numbers, measured side by side in one run on fresh platform homes (real Dagster, Feast, MLflow,
BentoML; staging really served on 127.0.0.1):

  P3  re-materialized / minimal set per kind of change (new partition, changed partition, feature code,
      evaluation code, gate threshold, hyper-parameter), and how many of the minimal set were missed. The
      minimal set is computed here from the asset graph alone: an automated asset partition belongs to it when it
      is new, its code version changed, its landed file changed, or a parent it depends on for content (policy
      edges excepted) belongs to it and got a different data version. Target 1.00 with 0 missed.
  P4  wall time of absorbing one new partition / a full rebuild, at 10, 30 and 90 partitions of history, with
      the absorption's split into the partition's own work and the unpartitioned chain (training to staging).
      Target ≤ 0.3 at 30 partitions.
  P5  orchestration overhead of `dagster job execute` of the training job in a subprocess: (run wall − sum of step
      compute) / run wall. Target ≤ 25 %.
  P8  a landed file to a new model serving in staging through the loop (the sensors and automation ticks run in
      process, back to back; the daemon would add its tick interval and a process start per run), over the sum
      of the compute steps. Target ≤ 1.5.
  P8 (dagster-daemon)  the same under a real `dagster-daemon run` (queued runs, one at a time, a process per run),
      once per automation interval (`--intervals`, default the platform's 10 s and Dagster's usual 30 s): from
      landing to staging serving the new version, minus the wait for the landing sensor's tick, over the compute
      of the steps on the path (the runs that started before staging served it; their steps include each run
      process's heavy imports); also minus the automation sensor's wait, the daemon's cost per automation
      evaluation and its idle CPU.

Run: `.venv/bin/python benchmarks/bench_loop.py [--only p3,p4,p5,p8,p8-daemon] [--rows 1000] [--sizes 10,30,90]
[--intervals 10,30]`
"""

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Set
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.loop_daemon import p8_daemon  # noqa: E402
from mlplatform.code_versions import PROJECT, Sources  # noqa: E402
from mlplatform.components.pipeline import load_spec  # noqa: E402
from mlplatform.definitions import build_definitions  # noqa: E402
from mlplatform.lib.data.demo import DEMO_START, credit_day, write_frame  # noqa: E402
from mlplatform.orchestration.freshness import (  # noqa: E402
    CODE_VERSION,
    DATA_VERSION,
    materialization_of,
    tags_of,
    triggers,
)
from mlplatform.orchestration.loop import Loop, compute_seconds  # noqa: E402
from mlplatform.settings import Settings  # noqa: E402
from mlplatform.specs import Gates  # noqa: E402

CREDIT = load_spec(ROOT / "demo" / "defs" / "credit" / "defs.yaml")  # the demo project's pipeline


@contextmanager
def platform(home: Path, sources: Sources | None = None, spec=CREDIT):  # noqa: ANN001, ANN201
    """A fresh platform home: settings, a Dagster instance in it, definitions; stops staging afterwards."""
    from mlplatform.deploy.processes import free_port

    settings = Settings.from_env({"MLPLATFORM_HOME": str(home), "MLPLATFORM_STAGING_PORT": str(free_port()),
                                  "MLPLATFORM_PRODUCTION_PORT": str(free_port())})
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(home / "dagster")) as instance:
        defs = build_definitions([spec], settings, sources or Sources())
        try:
            yield settings, instance, defs
        finally:
            assert defs.resources is not None
            defs.resources["deployment"].deployer().stop_env("staging")


def land(settings: Settings, day: int, rows: int, seed: int = 0) -> Path:
    """Demo day `day` as a landed file named by its date."""
    stem = str(DEMO_START + timedelta(days=day))
    return write_frame(credit_day(day, rows, seed=seed), settings.landing_root / "credit" / f"{stem}.csv")


# --- P3 --------------------------------------------------------------------------------------------------------
def snapshot(instance: dg.DagsterInstance, graph) -> dict:  # noqa: ANN001
    """(asset, partition) -> (data version, code version) of the latest materialization."""
    out = {}
    for asset_key in graph.get_all_asset_keys():
        for record in reversed(instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset_key),
                                                               limit=10_000).records):
            m, tags = materialization_of(record), tags_of(record)
            out[(asset_key, m.partition)] = (tags.get(DATA_VERSION), tags.get(CODE_VERSION))
    return out


def minimal_set(graph, instance, before: dict, after: dict, changed_files: set[str]) -> set[str]:  # noqa: ANN001
    """The minimal downstream set of a change, from the graph and the versions before and after it."""
    automated = {k for k in graph.get_all_asset_keys()
                 if graph.get(k).automation_condition is not None or k.path[-1] in ("raw", "validated", "labels",
                                                                                  "features")}
    members: set[tuple] = set()
    for asset_key in graph.toposorted_asset_keys:
        if asset_key not in automated:
            continue
        node = graph.get(asset_key)
        definition = node.partitions_def
        partitions = ([None] if definition is None else
                      list(definition.get_partition_keys(dynamic_partitions_store=instance)))
        if isinstance(definition, dg.TimeWindowPartitionsDefinition):
            continue  # the monitoring days follow the schedule, not a change
        for p in partitions:
            had = before.get((asset_key, p))
            member = had is None or had[1] != node.code_version
            member |= asset_key.path[-1] == "raw" and p in changed_files
            for parent in triggers(graph, asset_key):
                same = definition is not None and graph.get(parent).partitions_def == definition
                for (k, q) in list(members):
                    if k == parent and (not same or q == p) and before.get((k, q), (None,))[0] != after.get(
                            (k, q), (None,))[0]:
                        member = True
            if member:
                members.add((asset_key, p))
    return {k.to_user_string() + (f"[{p}]" if p else "") for k, p in members}


def p3(rows: int, work: Path) -> list[dict]:
    root = work / "checkout"
    shutil.copytree(PROJECT / "mlplatform", root / "mlplatform", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(PROJECT / "bentos", root / "bentos")
    shutil.copy(PROJECT / "requirements.lock", root / "requirements.lock")
    results: list[dict[str, Any]] = []
    with platform(work / "p3", Sources(root)) as (settings, instance, defs):
        loop = Loop(defs, instance, run_log_level="WARNING")
        for d in range(3):
            land(settings, d, rows)
        loop.settle()
        spec = CREDIT

        def measure(kind: str, new_spec=None, files: Set[str] = frozenset()) -> None:  # noqa: ANN001
            nonlocal spec
            spec = new_spec or spec
            loop.defs = build_definitions([spec], settings, Sources(root))
            graph = loop.defs.resolve_asset_graph()
            before, since = snapshot(instance, graph), len(loop.runs)
            started = time.perf_counter()
            loop.settle()
            wall = time.perf_counter() - started
            rebuilt = loop.materialized(since)
            minimal = minimal_set(graph, instance, before, snapshot(instance, graph), set(files))
            results.append({"change": kind, "rematerialized": len(rebuilt), "minimal": len(minimal),
                            "ratio": len(rebuilt) / len(minimal) if minimal else float("nan"),
                            "missed": sorted(minimal - rebuilt), "extra": sorted(rebuilt - minimal),
                            "wall_s": round(wall, 1)})
            print(f"  P3 {kind:20} {len(rebuilt):3} / {len(minimal):3} = {results[-1]['ratio']:.2f}, missed "
                  f"{len(results[-1]['missed'])}, extra {results[-1]['extra']} ({wall:.0f} s)", flush=True)

        land(settings, 3, rows)
        measure("new partition", files={"2026-01-04"})
        write_frame(credit_day(1, rows, seed=7), settings.landing_root / "credit" / "2026-01-02.csv")
        measure("changed partition", files={"2026-01-02"})
        features_py = root / "mlplatform" / "lib" / "features" / "featurize.py"
        features_py.write_text(features_py.read_text() + "\n# edited\n")
        measure("feature code")
        evaluate_py = root / "mlplatform" / "lib" / "evaluation" / "metrics.py"
        evaluate_py.write_text(evaluate_py.read_text() + "\n# edited\n")
        measure("evaluation code")
        measure("gate threshold", dataclasses.replace(spec, gates=Gates(floors=(("roc_auc", 0.6), ("pr_auc", 0.25)))))
        measure("hyper-parameter", dataclasses.replace(spec, regularization_c=0.5))
    return results


# --- P4 --------------------------------------------------------------------------------------------------------
def step_seconds(instance: dg.DagsterInstance, runs: list) -> dict[str, float]:
    """Each step's duration in these loop runs, by step key."""
    return {s.step_key: round((s.end_time or 0) - (s.start_time or 0), 1)
            for r in runs for s in instance.get_run_step_stats(r.run_id)}


def p4(rows: int, sizes: list[int], work: Path) -> list[dict]:
    results = []
    for n in sizes:
        with platform(work / f"p4-{n}") as (settings, instance, defs):
            loop = Loop(defs, instance, run_log_level="WARNING")
            for d in range(n):
                land(settings, d, rows)
            started = time.perf_counter()
            loop.settle()
            full = time.perf_counter() - started
            land(settings, n, rows)
            since, started = len(loop.runs), time.perf_counter()
            loop.settle()
            one = time.perf_counter() - started
            chain = sum(r.seconds for r in loop.runs[since:] if r.partition is None)
            steps = step_seconds(instance, [r for r in loop.runs[since:] if r.partition is None])
            own = step_seconds(instance, [r for r in loop.runs[since:] if r.partition is not None])
        results.append({"partitions": n, "full_rebuild_s": round(full, 1), "one_partition_s": round(one, 1),
                        "ratio": one / full, "partition_work_s": round(one - chain, 1), "chain_s": round(chain, 1),
                        "chain_steps_s": steps, "partition_steps_s": own})
        print(f"  P4 {n:3} partitions: one new partition {one:6.1f} s (its own {one - chain:5.1f} s, chain "
              f"{chain:5.1f} s) / full rebuild {full:6.1f} s = {one / full:.2f}", flush=True)
        for what, parts in (("its own steps", own), ("chain steps", steps)):
            print(f"      {what}: " + ", ".join(f"{k.split('__')[-1]} {v} s" for k, v in parts.items()), flush=True)
    return results


# --- P5 --------------------------------------------------------------------------------------------------------
def p5(rows: int, work: Path) -> dict:
    home = work / "p5"
    env = {**os.environ, "MLPLATFORM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    settings = Settings.from_env(env)
    for d in range(8):
        land(settings, d, rows)
    cli = str(Path(sys.executable).parent / "mlplatform")
    subprocess.run([cli, "ingest", "--no-train"], env=env, check=True, capture_output=True)
    dagster = str(Path(sys.executable).parent / "dagster")
    started = time.perf_counter()
    subprocess.run([dagster, "job", "execute", "-m", "demo.definitions", "-j", "credit_training_job"], env=env,
                   check=True, capture_output=True)
    wall = time.perf_counter() - started
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        run = instance.get_run_records(dg.RunsFilter(job_name="credit_training_job"), limit=1)[0].dagster_run
        compute = compute_seconds(instance, run.run_id)
    subprocess.run([cli, "stop", "staging"], env=env, capture_output=True)
    overhead = (wall - compute) / wall
    print(f"  P5 dagster job execute credit_training_job: wall {wall:.1f} s, steps {compute:.1f} s, overhead "
          f"{overhead:.0%}", flush=True)
    return {"wall_s": round(wall, 1), "steps_s": round(compute, 1), "overhead": overhead}


# --- P8 --------------------------------------------------------------------------------------------------------
def p8(rows: int, work: Path) -> dict:
    with platform(work / "p8") as (settings, instance, defs):
        loop = Loop(defs, instance, run_log_level="WARNING")
        for d in range(6):
            land(settings, d, rows)
        loop.settle()
        served = defs.resources["deployment"].deployer().deployments.read("staging").primary.model_version
        land(settings, 6, rows)
        since, started = len(loop.runs), time.perf_counter()
        loop.settle()
        latency = time.perf_counter() - started
        now = defs.resources["deployment"].deployer().deployments.read("staging").primary.model_version
        compute = sum(r.compute_seconds for r in loop.runs[since:])
    assert now != served, f"staging still serves v{served}"
    print(f"  P8 landed file → v{now} serving in staging: {latency:.1f} s / steps {compute:.1f} s = "
          f"{latency / compute:.2f}", flush=True)
    return {"latency_s": round(latency, 1), "steps_s": round(compute, 1), "ratio": latency / compute}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="p3,p4,p5,p8,p8-daemon")
    parser.add_argument("--rows", type=int, default=1000, help="rows per landed file")
    parser.add_argument("--sizes", default="10,30,90", help="P4 history sizes (partitions)")
    parser.add_argument("--intervals", default="10,30", help="P8 (dagster-daemon) automation intervals (seconds)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        work = Path(tmp)
        if "p3" in only:
            out["P3"] = p3(args.rows, work)
        if "p4" in only:
            out["P4"] = p4(args.rows, [int(s) for s in args.sizes.split(",")], work)
        if "p5" in only:
            out["P5"] = p5(args.rows, work)
        if "p8" in only:
            out["P8"] = p8(args.rows, work)
        if "p8-daemon" in only:
            out["P8 (dagster-daemon)"] = [p8_daemon(land, args.rows, work, int(i), n)
                                           for n, i in enumerate(args.intervals.split(","))]
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
