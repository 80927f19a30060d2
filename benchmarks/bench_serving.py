"""Serving benchmark: our Bento under `bentoml serve` against bare FastAPI and `mlflow models serve`, side by side.

One pipeline is served by every server, one worker each, on 127.0.0.1: by default the credit spec's logistic
regression (binary, fitted on demo data); `--dataset wine` a multiclass and `--dataset diabetes` a regression model
on the real datasets the tests use (the task's default estimator, or `--estimator` by name or dotted path).
For each round every server gets, in turn, N single-row requests at concurrency 1 (p50/p99) and 2N at concurrency
32 (requests/s) after a warm-up, from keep-alive connections (`loadgen.py`); medians over the rounds. The
machine is shared: differences between variants below ~15 % are within run-to-run noise.
Then the Bento is served again with one feature switched off at a time (auth, validation, metrics, prediction
logging) to show what each costs, its `/explain` (SHAP contributions of one row) is measured against its `/predict`,
and in-process scoring is timed for reference.

Run: `.venv/bin/python benchmarks/bench_serving.py [--dataset credit|wine|diabetes] [--requests 2000] [--rounds 3]`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import loadgen  # noqa: E402
from mlplatform.deploy.processes import free_port  # noqa: E402

KEY = "bench-key"
BIN = Path(sys.executable).parent


def dataset(name: str, estimator: str) -> tuple:
    """(spec, contract frame) of the benchmarked model: the demo credit data, or a real dataset of the tests."""
    import dataclasses

    import pandas as pd

    from mlplatform.components.pipeline import load_spec
    from mlplatform.lib.data.demo import credit_day
    CREDIT = load_spec(ROOT / "demo" / "defs" / "credit" / "defs.yaml")  # the demo project's pipeline

    if name == "credit":
        spec, frame = CREDIT, pd.concat([credit_day(d, 2000) for d in range(8)], ignore_index=True)
    else:
        from mlplatform_tests import datasets

        data = getattr(datasets, name)()
        spec, frame = data.spec, data.frame
    return dataclasses.replace(spec, estimator=estimator, estimator_params=()), frame


def prepare(work: Path, name: str, estimator: str) -> None:
    """Fit the pipeline; save it for the peers (joblib), MLflow (model dir) and BentoML (store + Bento, with its
    spec and SHAP explainer)."""
    import joblib
    import mlflow
    import pandas as pd

    from mlplatform.deploy import packaging
    from mlplatform.lib import predictions
    from mlplatform.lib.features.featurize import featurize
    from mlplatform.lib.training.train import TrainParams, fit
    from mlplatform.specs import spec_to_json

    spec, raw = dataset(name, estimator)
    frame = featurize(raw, spec).assign(**{spec.label: raw[spec.label].to_numpy()})
    pipeline, _, holdout = fit(frame, spec, TrainParams(spec.estimator_name, 1.0, 1000, 42, 2))
    joblib.dump(pipeline, work / "pipeline.joblib")
    (work / "spec.json").write_text(spec_to_json(spec))
    from mlplatform.lib.training.tracking import trusted_types

    mlflow.sklearn.save_model(pipeline, str(work / "mlflow_model"), skops_trusted_types=trusted_types(pipeline),
                              pyfunc_predict_fn="predict" if spec.task == "regression" else "predict_proba",
                              input_example=holdout[spec.feature_names].head(2))
    labels = {"mlflow_version": "1"}
    tag = packaging.save_model(spec, pipeline, labels, {"mlflow_version": "1", "decision_threshold": 0.3})
    explainer = packaging.explainer_file(pipeline, spec, packaging.explainer_background(frame, spec, 2, 42), 42)
    context = packaging.stage_context(work / "context", extra_files={"spec.json": spec_to_json(spec),
                                                                     "explainer.json": explainer},
                                      extra_modules=packaging.user_modules(spec))
    built = packaging.build(spec, tag, context, "local", labels)
    row = {k: (None if isinstance(v, float) and v != v else v)
           for k, v in raw[spec.contract_feature_names].iloc[0].to_dict().items()}
    model_row = featurize(pd.DataFrame([row]), spec, keys=False)[spec.feature_names].iloc[0].to_dict()
    (work / "bento.json").write_text(json.dumps({"path": str(built.path), "row": row, "model_row": model_row,
                                                 "pipeline": type(pipeline[-1]).__name__,
                                                 "explainer": json.loads(explainer).get("method")}))
    # in-process scoring, for reference: the pandas path (featurize + pipeline) and the compiled scorer
    import timeit

    from mlplatform.serving.scorer import Scorer

    scorer, rows = Scorer(pipeline, spec), [row]

    def through_pipeline(batch: list[dict]) -> None:
        predictions.output(pipeline, featurize(pd.DataFrame(batch), spec, keys=False)[spec.feature_names], spec)

    timings = {}
    for key, fn in {"pipeline_1_row": lambda: through_pipeline(rows),
                    "pipeline_32_rows": lambda: through_pipeline(rows * 32),
                    "scorer_1_row": lambda: scorer.output(rows),
                    "scorer_32_rows": lambda: scorer.output(rows * 32)}.items():
        runs = [timeit.timeit(fn, number=200) / 200 * 1e3 for _ in range(5)]
        timings[key] = statistics.median(runs)
    timings["scorer_compiled"] = scorer.compiled
    (work / "inprocess.json").write_text(json.dumps(timings))


@contextmanager
def server(argv: list[str], port: int, env: dict[str, str], ready_path: str = "/readyz"):
    import httpx

    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{argv[0]} exited: {log.read()[-3000:].decode(errors='replace')}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv} not ready after 180 s")
            time.sleep(0.3)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated server names (default: all)")
    parser.add_argument("--dataset", default="credit", choices=("credit", "wine", "diabetes", "breast_cancer"),
                        help="credit (binary, demo data), wine (multiclass), diabetes (regression), breast_cancer")
    parser.add_argument("--estimator", default="", help="the spec's estimator (default: the task's built-in)")
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        return prepare(args.prepare, args.dataset, args.estimator)
    with tempfile.TemporaryDirectory(prefix="mlplatform-bench-") as tmp:
        work = Path(tmp)
        base_env = {"BENTOML_HOME": str(work / "bentoml"), "BENTOML_DO_NOT_TRACK": "True", "PYTHONPATH": str(ROOT),
                    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow serve runs `uvicorn` by name
                    "MLPLATFORM_BENCH_PIPELINE": str(work / "pipeline.joblib")}
        base_env["MLPLATFORM_BENCH_SPEC"] = str(work / "spec.json")
        subprocess.run([sys.executable, __file__, "--prepare", str(work), "--dataset", args.dataset, "--estimator",
                        args.estimator], env={**os.environ, **base_env}, check=True, cwd=ROOT)
        built = json.loads((work / "bento.json").read_text())
        print(f"dataset {args.dataset}: {built['pipeline']} (explainer: {built['explainer']})", flush=True)
        candidates = servers(work, built)
        chosen = [s for s in args.only.split(",") if s] or list(candidates)
        results = measure({n: candidates[n] for n in chosen}, args.rounds, args.requests, base_env)
        med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
        print("\nmedians over rounds (c=1: latency of single-row requests; c=32: throughput):")
        for name, m in med.items():
            print(f"  {name:20s} c=1 p50 {m['p50']:6.2f} ms p99 {m['p99']:6.2f} ms | c=32 {m['rps']:6.0f} req/s "
                  f"p99 {m['p99_32']:6.1f} ms, {m['failed']:.0f} failed")
        inprocess = json.loads((work / "inprocess.json").read_text())
        print("in-process (median of 5x200 calls): " + ", ".join(f"{k} {v:.3f} ms" for k, v in inprocess.items()))
        ratios(med)


Server = tuple[list[str], str, str, bytes, dict[str, str], dict[str, str]]


def servers(work: Path, built: dict) -> dict[str, Server]:
    """name: (argv without the port, readiness path, request path, body, headers, env)."""
    bento_path = built["path"]
    body = json.dumps({"rows": [built["row"]]}).encode()
    mlflow_body = json.dumps({"dataframe_records": [built["model_row"]]}).encode()

    def uvicorn(app: str) -> tuple[list[str], str]:
        return [str(BIN / "uvicorn"), f"benchmarks.serving_peers:{app}", "--host", "127.0.0.1", "--workers", "1",
                "--no-access-log", "--log-level", "warning", "--port"], "/docs"

    bento = [str(BIN / "bentoml"), "serve", bento_path, "--host", "127.0.0.1", "--port"]
    # as deployed: API keys and the prediction log on
    auth = {"MLPLATFORM_AUTH": "on", "MLPLATFORM_API_KEYS": KEY,
            "MLPLATFORM_PREDICTION_LOG_DIR": str(work / "predictions")}
    key = {"x-api-key": KEY}
    return {
        "fastapi_sync": (*uvicorn("sync_app"), "/predict", body, {}, {}),
        "fastapi_async": (*uvicorn("async_app"), "/predict", body, {}, {}),
        "bento": (bento, "/readyz", "/predict", body, key, auth),
        "mlflow_serve": ([str(BIN / "mlflow"), "models", "serve", "-m", str(work / "mlflow_model"),
                          "--env-manager", "local", "-w", "1", "--host", "127.0.0.1", "--port"], "/ping",
                         "/invocations", mlflow_body, {}, {}),
        # the Bento with one thing changed at a time
        "bento_routed": ([sys.executable, str(ROOT / "benchmarks" / "routed.py"), bento_path, "--port"], "/readyz",
                         "/predict", body, key, auth),  # what staging/production serve: the router in front
        "bento_no_auth": (bento, "/readyz", "/predict", body, {}, {**auth, "MLPLATFORM_AUTH": "off"}),
        "bento_no_log": (bento, "/readyz", "/predict", body, key, {**auth, "MLPLATFORM_PREDICTION_LOG_DIR": ""}),
        "bento_no_validation": (bento, "/readyz", "/predict", body, key, {**auth, "MLPLATFORM_VALIDATION": "off"}),
        "bento_no_metrics": (bento, "/readyz", "/predict", body, key, {**auth, "MLPLATFORM_METRICS": "off"}),
        "bento_dispatch": (bento, "/readyz", "/predict", body, key, {**auth, "MLPLATFORM_HOT_PATH": "off"}),
        "bento_adaptive": (bento, "/readyz", "/predict_batched", body, key,
                           {**auth, "MLPLATFORM_HOT_PATH": "off", "MLPLATFORM_BENTOML_BATCHING": "on"}),
        "bento_explain": (bento, "/readyz", "/explain", body, key, auth),  # SHAP contributions of the row
    }
SLOW = {"bento_explain": 10}  # measured on a tenth of the requests (bounded: tens of ms each)


def measure(chosen: dict[str, Server], rounds: int, requests: int, base_env: dict[str, str],
            ) -> dict[str, dict[str, list[float]]]:
    """Each server in turn, each round: p50/p99 at concurrency 1, requests/s and p99 at 32 (bounded loops)."""
    results: dict[str, dict[str, list[float]]] = {name: {"p50": [], "p99": [], "rps": [], "p99_32": [],
                                                          "failed": []} for name in chosen}
    for round_ in range(rounds):
        for name, (argv, ready, path, payload_body, headers, env) in chosen.items():
            port = free_port()
            with server([*argv, str(port)], port, {**base_env, **env}, ready):
                payload = loadgen.request_bytes(path, payload_body, headers)
                n = max(50, requests // SLOW.get(name, 1))
                check = loadgen.run(port, payload, 1, 50, seconds=120)  # (the first /explain loads SHAP)
                assert check.statuses == {200: 50}, (name, check.statuses)
                loadgen.run(port, payload, 32, n)  # warm-up: a fresh server is slower at first
                single = loadgen.run(port, payload, 1, n)
                loaded = loadgen.run(port, payload, 32, n * 2)
            failed = loaded.errors + sum(n for status, n in loaded.statuses.items() if status != 200)
            for k, v in (("p50", single.p50), ("p99", single.pct(0.99)), ("rps", loaded.rps),
                         ("p99_32", loaded.pct(0.99)), ("failed", failed)):
                results[name][k].append(v)
            print(f"round {round_ + 1} {name:20s} c=1 p50 {single.p50:6.2f} ms p99 {single.pct(0.99):6.2f} ms | "
                  f"c=32 {loaded.rps:6.0f} req/s p99 {loaded.pct(0.99):6.1f} ms, {failed} failed", flush=True)
    return results


def ratios(med: dict[str, dict[str, float]]) -> None:
    """The targets and each safeguard's cost, from the medians of servers measured side by side."""
    if "bento" in med:
        b = med["bento"]
        for name, what in (("bento_no_auth", "auth"), ("bento_no_log", "prediction logging"),
                           ("bento_no_validation", "validation"),
                           ("bento_no_metrics", "metrics (BentoML's and ours)"),
                           ("bento_dispatch", "BentoML API dispatch instead of the hot path (+)")):
            if name in med:
                o = med[name]
                print(f"cost of {what}: c=1 p50 {b['p50'] - o['p50']:+.3f} ms, "
                      f"c=32 {o['rps'] / b['rps'] - 1:+.0%} req/s when off")
        if "bento_adaptive" in med:
            a = med["bento_adaptive"]
            print(f"BentoML adaptive batching (batchable API, no hot path): c=1 p50 {a['p50']:.2f} ms, "
                  f"c=32 {a['rps']:.0f} req/s ({a['failed']:.0f} failed) vs hot path {b['rps']:.0f} req/s")
    if "bento" in med and "fastapi_sync" in med:
        b, f = med["bento"], med["fastapi_sync"]
        print(f"P1 bento p50 / fastapi_sync p50 = {b['p50'] / f['p50']:.2f} (target <= 1.1)")
        print(f"P2 bento req/s / fastapi_sync req/s = {b['rps'] / f['rps']:.2f} (target >= 2)")
    if "bento" in med and "bento_routed" in med:
        b, r = med["bento"], med["bento_routed"]
        peer = med.get("fastapi_sync")
        versus = f" (p50 {r['p50'] / peer['p50']:.2f}x, req/s {r['rps'] / peer['rps']:.2f}x the sync FastAPI " \
                 "peer)" if peer else ""
        print(f"through the environment router: c=1 p50 {r['p50'] - b['p50']:+.3f} ms, "
              f"c=32 {r['rps'] / b['rps'] - 1:+.0%} req/s{versus}")
    if "bento" in med and "bento_explain" in med:
        b, e = med["bento"], med["bento_explain"]
        print(f"/explain (one row) vs /predict: c=1 p50 {e['p50']:.2f} ms vs {b['p50']:.2f} ms "
              f"({e['p50'] / b['p50']:.1f}x), c=32 {e['rps']:.0f} vs {b['rps']:.0f} req/s")
    if "bento" in med and "mlflow_serve" in med:
        b, m = med["bento"], med["mlflow_serve"]
        print(f"vs mlflow: p50 {m['p50'] / b['p50']:.1f}x lower (target >= 3), "
              f"throughput {b['rps'] / m['rps']:.1f}x (target >= 5)")


if __name__ == "__main__":
    main()
