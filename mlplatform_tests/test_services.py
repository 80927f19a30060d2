"""The production profile's services as `mlplatform up` handles them: unreachable engines are named, a service that
dies as it starts is reported with its log, a pid file of another program is not taken for the service."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlplatform.deploy.processes import free_port
from mlplatform.orchestration.services import Service, ServiceError, check_redis, ensure_databases, start, stop
from mlplatform.settings import Settings

MLPLATFORM = str(Path(sys.executable).parent / "mlplatform")


def production(tmp_path: Path, **extra: str) -> Settings:
    return Settings.from_env({"MLPLATFORM_HOME": str(tmp_path), "MLPLATFORM_PROFILE": "production", **extra})


def test_up_is_for_the_production_profile_only(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPLATFORM_")} | {
        "MLPLATFORM_HOME": str(tmp_path)}
    done = subprocess.run([MLPLATFORM, "up"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "`mlplatform up` brings up the production profile: set MLPLATFORM_PROFILE=production" in done.stderr


def test_dev_is_the_embedded_profiles_and_points_at_up(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPLATFORM_")} | {
        "MLPLATFORM_HOME": str(tmp_path), "MLPLATFORM_PROFILE": "production", "MLPLATFORM_UI_PORT": "3999"}
    done = subprocess.run([MLPLATFORM, "dev"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "started by `mlplatform up` (the UI on http://127.0.0.1:3999)" in done.stderr


def test_unreachable_engines_are_named_with_the_variable_that_points_at_them(tmp_path):
    port = free_port()  # nothing listens there
    with pytest.raises(ServiceError, match=rf"PostgreSQL at postgresql://postgres@127.0.0.1:{port} "
                                           r"\(MLPLATFORM_POSTGRES\) cannot be reached"):
        ensure_databases(production(tmp_path, MLPLATFORM_POSTGRES=f"postgresql://postgres@127.0.0.1:{port}"))
    with pytest.raises(ServiceError, match=rf"Redis at 127.0.0.1:{port} \(MLPLATFORM_REDIS\) cannot be reached"):
        check_redis(production(tmp_path, MLPLATFORM_REDIS=f"127.0.0.1:{port}"))


def test_a_service_that_exits_as_it_starts_is_an_error_quoting_its_log(tmp_path):
    settings = production(tmp_path)
    broken = Service("mlflow", [sys.executable, "-c", "import sys; print('no such backend store'); sys.exit(3)"],
                     "http://127.0.0.1:1/health")
    with pytest.raises(ServiceError) as err:
        start(broken, settings, dict(os.environ))
    assert "mlflow exited with status 3 as it started" in str(err.value)
    assert "no such backend store" in str(err.value)


def test_a_pid_file_of_another_program_is_not_the_service(tmp_path):
    settings = production(tmp_path)
    service = Service("mlflow", [str(Path(sys.executable).parent / "mlflow"), "server"], "")
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)  # e.g. the pid reused after a reboot
    try:
        service.pidfile(settings).parent.mkdir(parents=True)
        service.pidfile(settings).write_text(str(other.pid))
        assert service.pid(settings) is None
        assert stop(service, settings) is False  # and `down` does not kill it
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
