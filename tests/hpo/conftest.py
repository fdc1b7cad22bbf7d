"""Fixtures of the hyperparameter-search tests: a fresh PostgreSQL database per test (when CI
started a server: ``JETLAB_TEST_POSTGRES_URL``, see .ci/run) and the common trial flags."""

from __future__ import annotations

import os
import uuid

import pytest


@pytest.fixture
def postgres_url():
    """A new, empty database on the test server, dropped afterwards."""
    server = os.environ.get("JETLAB_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("no PostgreSQL server: set JETLAB_TEST_POSTGRES_URL=postgresql://USER@127.0.0.1:PORT/postgres "
                    "(.ci/run starts one)")
    pytest.importorskip("psycopg", reason="pip install 'jetlab[hpo]' (psycopg)")
    import sqlalchemy

    from jetlab.hpo.study import storage_url

    name = f"jetlab_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(storage_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture
def postgres_password_url(postgres_url):
    """A database of :func:`postgres_url` owned by a new role that logs in with a password: its URL
    with the password in it (the role is dropped afterwards)."""
    import sqlalchemy

    from jetlab.hpo.study import storage_url

    database = postgres_url.rsplit("/", 1)[1]
    role, password = f"{database}_user", f"pw-{uuid.uuid4().hex[:16]}"
    admin = sqlalchemy.create_engine(storage_url(postgres_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        connection.execute(sqlalchemy.text(f"ALTER DATABASE {database} OWNER TO {role}"))
        connection.execute(sqlalchemy.text(f"GRANT ALL ON SCHEMA public TO {role}"))
    admin.dispose()
    server = postgres_url.split("://", 1)[1].split("@", 1)[1]
    try:
        yield f"postgresql://{role}:{password}@{server}"
    finally:
        admin = sqlalchemy.create_engine(storage_url(os.environ["JETLAB_TEST_POSTGRES_URL"]),
                                         isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            connection.execute(sqlalchemy.text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


@pytest.fixture
def trial_flags(tiny_jets_dir):
    """Fixed settings of a small, quick tagger study: the DNN on the tiny jets, one thread."""
    return ["--model", "dnn", "--data", str(tiny_jets_dir), "--epochs", "2", "--threads", "1", "--heartbeat", "0"]


@pytest.fixture
def read_study():
    """``read_study(url, name) -> (trials, direction names)``, its database connections closed again."""
    from jetlab.hpo.study import close_storage, open_storage, quiet_optuna

    def read(url: str, name: str):
        storage = open_storage(url, heartbeat_s=0)
        try:
            with quiet_optuna() as optuna:
                study = optuna.load_study(study_name=name, storage=storage)
                return study.get_trials(), [d.name for d in study.directions]
        finally:
            close_storage(storage)

    return read
