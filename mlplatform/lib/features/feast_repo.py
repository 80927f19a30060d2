"""Feast objects and store configuration built from a spec (imports feast lazily: it costs ~10 s)."""

import hashlib
import inspect
from datetime import timedelta
from pathlib import Path
from typing import Any

from mlplatform.specs import Spec

PROJECT = "mlplatform"


def entity_name(spec: Spec) -> str:
    return f"{spec.name}_{spec.entity}"


def feature_view_name(spec: Spec) -> str:
    return f"{spec.name}_features"


def offline_dir(feast_dir: Path, spec: Spec) -> Path:
    """Folder of the spec's Feast offline source: one parquet file per dataset partition."""
    return feast_dir / "offline" / spec.name


def feast_objects(spec: Spec, source_dir: Path) -> list[Any]:
    """Entity, source, feature view and the versioned feature service for one spec."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, String

    entity = Entity(name=entity_name(spec), join_keys=[spec.entity], value_type=ValueType.INT64,
                    description=f"{spec.entity} of {spec.name}")
    source = FileSource(name=f"{spec.name}_source", path=str(source_dir / "*.parquet"),
                        timestamp_field=spec.timestamp)
    categorical = set(spec.categorical_feature_names)
    schema = [Field(name=n, dtype=String if n in categorical else Float64) for n in spec.feature_names]
    view = FeatureView(name=feature_view_name(spec), entities=[entity], ttl=timedelta(0), schema=schema,
                       source=source, online=True, tags={"spec": spec.name})
    service = FeatureService(name=spec.feature_service_name, features=[view],
                             tags={"spec": spec.name, "version": str(spec.feature_service_version)},
                             description=f"Model inputs of {spec.name}, version {spec.feature_service_version}")
    return [entity, source, view, service]


def definitions_version(spec: Spec) -> str:
    """Changes exactly when the Feast definitions of `spec` change: the spec and this module's code."""
    import mlplatform.lib.features.feast_repo as module

    source = inspect.getsource(module)
    feast_fields = repr((spec.name, spec.entity, spec.timestamp, spec.feature_names, spec.categorical_feature_names,
                         spec.feature_service_version))
    return hashlib.sha256((feast_fields + source).encode()).hexdigest()[:12]


def repo_config(feast_dir: Path, repo_path: Path, online_store: str = "sqlite",
                redis_connection: str = "127.0.0.1:6379", registry: str = "", project: str = PROJECT) -> Any:
    """The store's RepoConfig: the offline parquet files under `feast_dir` (read with duckdb), the online store in
    sqlite there or on Redis, the registry a file there or, given `registry` (a SQLAlchemy URL), Feast's SQL
    registry on that database (the production profile's PostgreSQL)."""
    from feast.repo_config import RegistryConfig, RepoConfig

    online: dict[str, Any] = {"type": "sqlite", "path": str(feast_dir / "online.db")}
    if online_store == "redis":
        online = {"type": "redis", "connection_string": redis_connection}
    where = RegistryConfig(registry_type="file", path=str(feast_dir / "registry.db"), cache_ttl_seconds=0)
    if registry:
        from feast.infra.registry.sql import SqlRegistryConfig

        where = SqlRegistryConfig(registry_type="sql", path=registry, cache_ttl_seconds=0,
                                  sqlalchemy_config_kwargs={"echo": False, "pool_pre_ping": True})
    return RepoConfig(
        project=project,
        provider="local",
        registry=where,
        online_store=online,
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
        repo_path=repo_path,
    )
