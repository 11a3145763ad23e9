"""The shared test harness: settings per test, the app under test on SQLite and PostgreSQL,
logged-in clients, and the real server under hypercorn in a subprocess.

Database-facing tests take the ``app`` (or ``settings``) fixture, which is
parametrised over ``sqlite`` and ``postgres``. PostgreSQL tests skip with a
reason when no server answers on HERALD_TEST_PG (default 127.0.0.1:5432),
except under CI=true, where an unreachable server fails the run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import socket
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from appliance.app import create_app
from appliance.core.clock import FakeClock
from appliance.core.settings import Settings
from tests.support import pg

BACKENDS = ["sqlite", "postgres"]


def run_sync(coro):
    """Run a coroutine to completion from a synchronous fixture.

    In a thread of its own: Playwright's sync API (session-scoped browser
    fixtures) leaves an event loop running in the main thread, where
    asyncio.run() refuses to start.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()

# Browser fixtures (chromium, herald_server, artifacts) for every test module.
pytest_plugins = ["tests.support.browser"]


# The slow groups first, so that the longest (the container and install builds) starts at once and
# the quick modules fill the other workers around it; then the end-to-end modules.
_FIRST = ("tests/deploy/", "tests/e2e/")


def _group(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    # tests/deploy shares one build cache, held for a whole session (tests/deploy/conftest.py):
    # its modules run in one worker, one after another.
    return "tests/deploy" if path.startswith("tests/deploy/") else path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow groups first (every worker orders alike, as pytest-xdist requires)."""
    def rank(item: pytest.Item) -> int:
        for index, prefix in enumerate(_FIRST):
            if item.nodeid.startswith(prefix):
                return index
        return len(_FIRST)

    items.sort(key=rank)


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # run without pytest-xdist: one process, nothing to schedule
    pass
else:
    class _ByModule(LoadScopeScheduling):
        """A module's tests stay on one worker (its module-scoped OctoPrint, browser or server starts
        once), and all of tests/deploy on one. pytest-xdist's own ``--dist loadgroup`` cannot do the
        second here: with pytest 9 its group suffix no longer reaches the node ids."""

        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid)

    def pytest_xdist_make_scheduler(config: pytest.Config, log):
        return _ByModule(config, log)


def pytest_configure(config: pytest.Config) -> None:
    # OctoPrint's octoprint.util.net opens and drops an IPv6 socket at import time
    # (its check_v6); with warnings as errors that ResourceWarning would surface as
    # an unraisable-exception error in whichever test happens to import it first.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import octoprint.util.net  # noqa: F401
        except ImportError:
            pass
    os.environ.setdefault("HERALD_TEST_ARTIFACTS", str(Path(__file__).resolve().parent.parent / "test-artifacts"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once per session; each test gets a copy."""
    from appliance.core.db import apply_migrations

    directory = tmp_path_factory.mktemp("sqlite-template")
    settings = Settings.build(data_dir=str(directory))
    run_sync(apply_migrations(settings))
    return directory / "herald.sqlite3"


@pytest.fixture(scope="session")
def pg_template() -> str:
    """A PostgreSQL database migrated once per session; each test clones it."""
    pg.require_server()
    name = f"herald_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    run_sync(pg.create_database(name))
    try:
        from appliance.core.db import apply_migrations

        settings = Settings.build(database_url=pg.url(name))
        run_sync(apply_migrations(settings))
        yield name
    finally:
        run_sync(pg.drop_database(name))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path):
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        shutil.copy(template, tmp_path / "herald.sqlite3")
        yield f"sqlite://{tmp_path / 'herald.sqlite3'}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"herald_t_{uuid.uuid4().hex[:12]}"
    run_sync(pg.create_database(name, template=template))
    try:
        yield pg.url(name)
    finally:
        run_sync(pg.drop_database(name))


@pytest.fixture(autouse=True)
def _no_leftover_database():
    """A test whose app did not close its database fails itself, and the next test starts clean.

    Without this, one app left open (a stop that raised, a test cut short) makes every later
    test's start fail with Tortoise's "Global context fallback is already enabled": one fault
    became hundreds of errors in CI.
    """
    from tortoise import context as tortoise_context

    if tortoise_context._global_context is not None:  # left by something outside a test
        run_sync(tortoise_context._global_context.close_connections())
        tortoise_context._global_context = None
    yield
    left = tortoise_context._global_context
    if left is not None:
        try:
            run_sync(left.close_connections())
        except Exception:
            pass
        tortoise_context._global_context = None
        pytest.fail("the test left Herald's database open (its app did not stop cleanly)", pytrace=False)


@pytest.fixture(autouse=True)
def _fresh_statement_cache() -> None:
    """Tortoise caches INSERT statements per connection *name*; tests switch the "default"
    connection between SQLite and PostgreSQL in one process, which a real server never
    does, so every test (also those that call create_app themselves) starts with none."""
    EXECUTOR_CACHE.clear()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings.build(
        data_dir=str(tmp_path),
        database_url=database_url,
        public_url="http://herald.test",
        smtp_host="",
    )


@pytest.fixture
def app_deps() -> dict:
    """Extra keyword dependencies for create_app; override in a test module to inject fakes."""
    return {}


@pytest.fixture
async def app(settings: Settings, clock: FakeClock, app_deps: dict) -> AsyncIterator:
    # Tortoise caches INSERT statements per connection *name*; tests switch the
    # "default" connection between SQLite and PostgreSQL in one process, which a
    # real server never does, so the cache must be emptied between apps.
    EXECUTOR_CACHE.clear()
    application = create_app(settings, clock=clock, **app_deps)
    async with application.test_app() as test_app:
        yield test_app


@pytest.fixture
def client(app):
    return app.test_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def herald(app):
    """The running app's Herald state (settings, clock, secret box, ...) for calling services."""
    return app.app.extensions["herald"]
