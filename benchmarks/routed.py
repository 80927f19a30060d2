"""A Bento behind the environment router, as the embedded deployer serves it (for bench_serving.py).

Run: `python benchmarks/routed.py BENTO_PATH --port P`: starts `bentoml serve` of the Bento on a free loopback
port (environment variables as given), records it as the primary of a throwaway staging record and runs the
router (`python -m mlplatform.deploy.router`) on P; SIGTERM stops both.
"""

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlplatform.deploy.processes import free_port  # noqa: E402
from mlplatform.deploy.records import Backend, Deployments, Record, now  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bento")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so the finally below stops the children
    backend_port, children = free_port(), []
    with tempfile.TemporaryDirectory() as root:
        try:
            children.append(subprocess.Popen([str(Path(sys.executable).with_name("bentoml")), "serve", args.bento,
                                              "--host", "127.0.0.1", "--port", str(backend_port)],
                                             stdout=subprocess.DEVNULL))
            while not _ready(backend_port):
                if children[0].poll() is not None:
                    raise SystemExit("bentoml serve exited")
                time.sleep(0.3)
            Deployments(Path(root)).write(Record(
                env="staging", sequence=1, created_at=now(), created_by="bench", reason="bench",
                primary=Backend(bento_tag="bench:1", bento_path=args.bento, model="credit_model", model_version="1",
                                port=backend_port, pid=children[0].pid)))
            children.append(subprocess.Popen([sys.executable, "-m", "mlplatform.deploy.router", "--root", root, "--env",
                                              "staging", "--port", str(args.port)], cwd=ROOT))
            children[-1].wait()
        finally:
            for child in reversed(children):
                child.terminate()
                child.wait(timeout=30)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
