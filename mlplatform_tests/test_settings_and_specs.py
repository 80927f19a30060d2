import os

import pytest

from mlplatform.settings import Settings, SettingsError
from mlplatform.specs import Derived, Numeric, Spec
from mlplatform_tests.pipelines import CREDIT


def test_local_defaults_keep_all_state_under_one_home(tmp_path):
    s = Settings.from_env({"MLPLATFORM_HOME": str(tmp_path)})
    assert s.env == "local"
    for path in (s.dagster_home, s.feast_dir, s.quarantine_dir, s.bentoml_home, s.landing_root, s.io_dir):
        assert path.is_relative_to(tmp_path)
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db"


def test_default_home_is_dot_mlplatform_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).home == tmp_path / ".mlplatform"


def test_unknown_environment_is_refused_with_the_choices():
    with pytest.raises(SettingsError, match=r"MLPLATFORM_ENV='prod': expected one of local, staging, production"):
        Settings.from_env({"MLPLATFORM_ENV": "prod"})


def test_staging_and_production_need_an_explicit_home():
    with pytest.raises(SettingsError, match="set MLPLATFORM_HOME explicitly"):
        Settings.from_env({"MLPLATFORM_ENV": "production"})


def test_online_store_choice_is_checked(tmp_path):
    with pytest.raises(SettingsError, match="MLPLATFORM_FEAST_ONLINE_STORE='dynamo'"):
        Settings.from_env({"MLPLATFORM_HOME": str(tmp_path), "MLPLATFORM_FEAST_ONLINE_STORE": "dynamo"})


def test_automation_interval_reaches_the_automation_sensor_and_is_checked(tmp_path):
    from mlplatform.definitions import build_definitions

    settings = Settings.from_env({"MLPLATFORM_HOME": str(tmp_path), "MLPLATFORM_AUTOMATION_INTERVAL": "7"})
    assert Settings.from_env(settings.environ()) == settings
    sensor = build_definitions([CREDIT], settings).resolve_sensor_def("automation_sensor")
    assert sensor.minimum_interval_seconds == 7
    assert Settings.from_env({"MLPLATFORM_HOME": str(tmp_path)}).automation_interval == 10
    with pytest.raises(SettingsError, match=r"MLPLATFORM_AUTOMATION_INTERVAL='0.5': expected whole seconds"):
        Settings.from_env({"MLPLATFORM_HOME": str(tmp_path), "MLPLATFORM_AUTOMATION_INTERVAL": "0.5"})


def test_spec_rejects_a_column_named_twice():
    with pytest.raises(ValueError, match=r"column names used twice: \['x'\]"):
        Spec(name="s", entity="id", timestamp="ts", label="y", numeric=(Numeric("x"), Numeric("x")))


def test_spec_rejects_a_derived_feature_of_unknown_columns():
    with pytest.raises(ValueError, match=r"derived feature 'r' uses unknown columns \['nope'\]"):
        Spec(name="s", entity="id", timestamp="ts", label="y", numeric=(Numeric("x"),),
             derived=(Derived("r", "ratio", ("x", "nope")),))


def test_demo_spec_lists_features_in_a_stable_order():
    assert CREDIT.feature_names[:2] == ["age", "income"]
    assert CREDIT.feature_names[-3:] == ["loan_to_income", "monthly_payment", "log_income"]
    assert CREDIT.feature_service_name == "credit_v1"
    assert CREDIT.sensitive.name not in CREDIT.feature_names


def test_export_points_dagster_at_the_home_with_one_run_at_a_time(tmp_path, monkeypatch):
    import dagster as dg

    for name in ("DAGSTER_HOME", "BENTOML_HOME", "MLFLOW_TRACKING_URI"):
        monkeypatch.setenv(name, "unset")  # registers the undo, so what export() sets is removed afterwards
        monkeypatch.delenv(name)
    settings = Settings.from_env({"MLPLATFORM_HOME": str(tmp_path)})
    settings.export()
    assert os.environ["DAGSTER_HOME"] == str(tmp_path / "dagster")
    assert os.environ["MLFLOW_TRACKING_URI"] == settings.mlflow_tracking_uri
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1
        assert instance.run_coordinator.dequeue_interval_seconds == 1


def test_prepare_instance_creates_every_store_before_the_ui_and_daemon_start_together(tmp_path, monkeypatch):
    """`mlplatform dev` starts the UI, the daemon and a code server at once; each would create a missing sqlite store,
    and two of them stamping one store leaves it unopenable. Prepared first, every store exists with one revision."""
    import sqlite3

    for name in ("DAGSTER_HOME", "BENTOML_HOME", "MLFLOW_TRACKING_URI"):
        monkeypatch.setenv(name, "unset")
        monkeypatch.delenv(name)
    from mlplatform.orchestration.instance import prepare_instance

    prepare_instance(Settings.from_env({"MLPLATFORM_HOME": str(tmp_path)}))
    stores = sorted((tmp_path / "dagster").rglob("*.db"))
    assert {p.name for p in stores} >= {"runs.db", "index.db", "schedules.db"}
    for store in stores:
        with sqlite3.connect(store) as db:
            assert len(db.execute("SELECT version_num FROM alembic_version").fetchall()) == 1, store


def test_production_profile_settings_name_their_databases_servers_and_are_checked(tmp_path):
    home = {"MLPLATFORM_HOME": str(tmp_path), "MLPLATFORM_PROFILE": "production"}
    settings = Settings.from_env(home | {"MLPLATFORM_DATABASE_PREFIX": "team_a", "MLPLATFORM_MLFLOW_PORT": "5111"})
    assert settings.production and settings.max_concurrent_runs == 4
    assert settings.database_url("dagster") == "postgresql+psycopg2://postgres@127.0.0.1:5432/team_a_dagster"
    assert settings.feast_registry == "postgresql+psycopg2://postgres@127.0.0.1:5432/team_a_feast"
    assert settings.feast_project == "team_a" and settings.feast_online_store == "redis"
    assert settings.mlflow_tracking_uri == "http://127.0.0.1:5111" and settings.mlflow_server_started_here
    assert Settings.from_env(settings.environ()) == settings  # a re-executed run rebuilds exactly these
    own = Settings.from_env(home | {"MLFLOW_TRACKING_URI": "http://mlflow.internal:80"})
    assert own.mlflow_tracking_uri == "http://mlflow.internal:80" and not own.mlflow_server_started_here
    embedded = Settings.from_env({"MLPLATFORM_HOME": str(tmp_path)})
    assert not embedded.production and embedded.feast_registry == "" and embedded.feast_project == "mlplatform"
    refused = {
        "MLPLATFORM_PROFILE": ("cloud", "MLPLATFORM_PROFILE='cloud': expected one of embedded, production"),
        "MLPLATFORM_POSTGRES": ("postgresql://u:secret@db:5432", "MLPLATFORM_POSTGRES holds a password: set it in "
                                "PGPASSWORD instead"),
        "MLPLATFORM_DATABASE_PREFIX": ("Team-A", "MLPLATFORM_DATABASE_PREFIX='Team-A': expected a lowercase name"),
        "MLPLATFORM_MAX_CONCURRENT_RUNS": ("0", "MLPLATFORM_MAX_CONCURRENT_RUNS='0': expected a whole number"),
    }
    for name, (value, message) in refused.items():
        with pytest.raises(SettingsError) as err:
            Settings.from_env(home | {name: value})
        assert str(err.value).startswith(message) and "secret" not in str(err.value)
    with pytest.raises(SettingsError, match="the embedded profile's stores are single-writer"):
        Settings.from_env({"MLPLATFORM_HOME": str(tmp_path), "MLPLATFORM_MAX_CONCURRENT_RUNS": "2"})
    with pytest.raises(SettingsError, match="give the server only"):
        Settings.from_env(home | {"MLPLATFORM_POSTGRES": "postgresql://postgres@db:5432/dagster"})


def test_production_dagster_yaml_puts_dagster_on_postgres_with_runs_in_parallel_and_one_step_per_pool(tmp_path):
    import yaml

    settings = Settings.from_env({"MLPLATFORM_HOME": str(tmp_path), "MLPLATFORM_PROFILE": "production",
                                  "MLPLATFORM_MAX_CONCURRENT_RUNS": "3"})
    config = yaml.safe_load(settings.dagster_yaml())
    assert config["storage"] == {"postgres": {"postgres_url": settings.database_url("dagster")}}
    assert config["concurrency"] == {"runs": {"max_concurrent_runs": 3}, "pools": {"default_limit": 1}}
    # the file follows the settings while it is the platform's; once its first line is removed it is the user's
    path = tmp_path / "dagster.yaml"
    path.write_text(Settings.from_env({"MLPLATFORM_HOME": str(tmp_path)}).dagster_yaml())
    os.environ["DAGSTER_HOME"] = str(tmp_path)
    try:
        settings.export()
        assert path.read_text() == settings.dagster_yaml()
        path.write_text("telemetry:\n  enabled: false\n")
        settings.export()
        assert path.read_text() == "telemetry:\n  enabled: false\n"
    finally:
        del os.environ["DAGSTER_HOME"]


def test_the_pools_are_on_the_steps_every_pipeline_shares():
    from mlplatform.definitions import build_definitions

    settings = Settings.from_env({"MLPLATFORM_HOME": "/tmp/unused-home"})
    graph = build_definitions([CREDIT], settings).resolve_asset_graph()
    pools = {k.to_user_string(): graph.get(k).pools for k in graph.materializable_asset_keys}
    assert pools["credit/feature_registry"] == {"feast_registry"}
    assert pools["credit/bento"] == {"bentoml_store"}
    assert pools["credit/staging"] == pools["credit/production"] == {"deploy"}
    assert not pools["credit/model"] and not pools["credit/features"]
