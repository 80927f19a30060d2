"""Foundation benchmarks, each measured side by side in one run (ratios hold on a noisy machine).

  1. loading a project's code location (the checkout's demo project, a project of three pipelines) against
     `import dagster` alone;
  2. validation: pandera (the platform's contract) against a hand-written pandas check of the same rules, at 10k,
     100k and 1M rows, on valid data and with 1 % bad rows;
  3. ingesting one partition end to end (`credit_ingest_job` in a fresh process): wall time, peak memory, time per step.

Run: `make bench` (or `.venv/bin/python benchmarks/bench_foundation.py --ingest-rows 1000000`).
"""

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlplatform.components.pipeline import load_spec
from mlplatform.lib.data.demo import corrupt, credit_day
from mlplatform.lib.data.validation import validate_landed
from mlplatform.specs import Spec

ROOT = Path(__file__).resolve().parent.parent
CREDIT = load_spec(ROOT / "demo" / "defs" / "credit" / "defs.yaml")  # the demo project's pipeline
REDIS_DB = 12  # a database of the local Redis used only by this benchmark, emptied before and after


def hand_written(frame: pd.DataFrame, spec: Spec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The contract's rules in plain pandas: same coercions, same checks, same valid/quarantine split."""
    out = frame.copy()
    bad = np.zeros(len(out), bool)
    for name in [spec.entity, spec.label, *(c.name for c in spec.numeric)]:
        out[name] = pd.to_numeric(out[name], errors="coerce")
    out[spec.timestamp] = pd.to_datetime(out[spec.timestamp], utc=True, errors="coerce", format="ISO8601")
    bad |= (out[spec.entity].isna().to_numpy() | (out[spec.entity] < 0).to_numpy()
            | out[spec.timestamp].isna().to_numpy())
    for col in spec.numeric:
        values = out[col.name].to_numpy(dtype=float)
        bad |= ~np.isfinite(values) | (values < col.min) | (values > col.max)
    assert spec.sensitive is not None  # the benchmark's spec has one
    for cat in [*spec.categorical, spec.sensitive]:
        bad |= ~out[cat.name].isin(cat.categories).to_numpy()
    bad |= ~out[spec.label].isin([0, 1]).to_numpy()
    bad |= out.duplicated([spec.entity, spec.timestamp], keep=False).to_numpy()
    good = out[~bad].astype({spec.entity: "int64", spec.label: "int64"})
    good = good.astype({c.name: "int64" for c in spec.numeric if c.integer})
    return good, frame[bad]


def as_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    buffer.seek(0)
    return pd.read_csv(buffer)


def timed(fn, *args) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def bench_import(rounds: int) -> None:
    print("\n## 1. Loading a project's code location (fresh interpreter each time, interleaved)")
    with tempfile.TemporaryDirectory() as tmp:
        from mlplatform.components.scaffold import init_project, pipeline_yaml

        init_project(Path(tmp) / "three", "first")  # a user's project, with three pipelines
        for name in ("second", "third"):
            folder = Path(tmp) / "three" / "three" / "defs" / name
            folder.mkdir()
            (folder / "defs.yaml").write_text(pipeline_yaml(name))
        cases = {"import dagster": ("import dagster", ROOT),
                 "import demo.definitions (1 pipeline)": ("import demo.definitions", ROOT),
                 "a project of 3 pipelines": ("import three.definitions", Path(tmp) / "three")}
        times: dict[str, list[float]] = {k: [] for k in cases}
        environ = {**os.environ, "MLPLATFORM_HOME": str(Path(tmp) / "home")}
        for _ in range(rounds):
            for name, (code, cwd) in cases.items():
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], check=True, cwd=cwd, env=environ)
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["import dagster"])
    for name, values in times.items():
        med = statistics.median(values)
        print(f"  {name:38} median {med:5.2f} s  ({med / base:4.2f}x import dagster)  target <= 3 s")


def bench_validation(sizes: list[int], rounds: int) -> None:
    print("\n## 2. Validation: pandera contract vs hand-written pandas, same rules (median of interleaved rounds)")
    print(f"  {'rows':>9} {'data':>8} {'pandera s':>10} {'pandas s':>9} {'ratio':>6} {'pandera rows/s':>15}")
    for rows in sizes:
        base = as_csv_frame(credit_day(0, rows))
        bad = as_csv_frame(corrupt(credit_day(0, rows), "out-of-range", share=0.01))
        for label, frame in (("valid", base), ("1% bad", bad)):
            ours, theirs = [], []
            for _ in range(rounds):
                ours.append(timed(validate_landed, frame, CREDIT))
                theirs.append(timed(hand_written, frame, CREDIT))
            result = validate_landed(frame, CREDIT)
            good, _ = hand_written(frame, CREDIT)
            assert len(result.valid) == len(good), (len(result.valid), len(good))
            p, h = statistics.median(ours), statistics.median(theirs)
            print(f"  {rows:>9,} {label:>8} {p:10.3f} {h:9.3f} {p / h:6.2f} {rows / p:15,.0f}")


INGEST = """
import json, resource, sys, time
t0 = time.perf_counter()
import dagster as dg
from mlplatform.definitions import build_definitions
from mlplatform.settings import Settings
from mlplatform.components.pipeline import load_spec
CREDIT = load_spec(sys.argv[3])
settings = Settings.from_env({"MLPLATFORM_HOME": sys.argv[1]})
defs = build_definitions([CREDIT], settings)
with dg.instance_for_test(temp_dir=sys.argv[2]) as instance:
    instance.add_dynamic_partitions("credit_files", ["2026-01-01"])
    t1 = time.perf_counter()
    result = defs.resolve_job_def("credit_ingest_job").execute_in_process(instance=instance, partition_key="2026-01-01")
    t2 = time.perf_counter()
    steps = {}
    for e in result.all_events:
        if e.event_type_value == "STEP_SUCCESS":
            steps[e.step_key] = e.event_specific_data.duration_ms / 1000
print(json.dumps({"ok": result.success, "load_s": t1 - t0, "run_s": t2 - t1, "steps": steps,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_ingest(rows: int, online_store: str) -> None:
    print(f"\n## 3. Ingest of one {rows:,}-row CSV partition end to end "
          f"(credit_ingest_job, online store {online_store})")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        folder = home / "landing" / "credit"
        folder.mkdir(parents=True)
        credit_day(0, rows).to_csv(folder / "2026-01-01.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        (Path(tmp) / "dagster").mkdir()
        env_code = (f"import os; os.environ['MLPLATFORM_FEAST_ONLINE_STORE'] = {online_store!r}; "
                    f"os.environ['MLPLATFORM_REDIS'] = '127.0.0.1:6379,db={REDIS_DB}'\n")
        if online_store == "redis":
            import redis

            redis.Redis(db=REDIS_DB).flushdb()
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", env_code + INGEST, str(home), str(Path(tmp) / "dagster"),
                              str(ROOT / "demo" / "defs" / "credit" / "defs.yaml")],
                             capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - start
        if out.returncode != 0:
            print(out.stderr[-3000:])
            raise SystemExit("ingest benchmark failed")
        if online_store == "redis":
            redis.Redis(db=REDIS_DB).flushdb()
        report = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  wall {wall:.1f} s (process incl. imports), job {report['run_s']:.1f} s, "
              f"peak RSS {report['peak_rss_mb']:.0f} MB, {rows / report['run_s']:,.0f} rows/s through the job")
        for step, seconds in report["steps"].items():
            print(f"    {step:28} {seconds:7.2f} s  ({seconds / report['run_s']:5.1%} of the job)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--ingest-rows", type=int, default=1_000_000)
    parser.add_argument("--online-store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--skip", nargs="*", default=[], choices=["import", "validation", "ingest"])
    args = parser.parse_args()
    if "import" not in args.skip:
        bench_import(max(args.rounds, 5))
    if "validation" not in args.skip:
        bench_validation(args.sizes, args.rounds)
    if "ingest" not in args.skip:
        bench_ingest(args.ingest_rows, args.online_store)


if __name__ == "__main__":
    main()
