"""One real PostgreSQL server for the sharing tests (``postgres.PostgresServer``), and a
fresh database per test."""

from __future__ import annotations

import itertools

import pytest

from .postgres import PostgresServer

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer().start()
    yield server
    server.close()


@pytest.fixture
def share_url(postgres) -> str:
    if postgres.proc is None:  # a test stopped it and failed before starting it again
        postgres.start()
    return postgres.create_database(f"share_{next(_names)}")
