"""The application factory. Nothing happens at import time; see create_app()."""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from quart import Quart, g, request
from quart_schema import QuartSchema
from quart_schema.openapi import OpenAPIProvider

from appliance import __version__
from appliance.auth import ANON_CSRF_COOKIE, LoginRequired, check_csrf, csrf_token, login_redirect
from appliance.clock import Clock
from appliance.db import close_database, open_database
from appliance.errors import register_error_handlers
from appliance.jsonbody import install_json_provider
from appliance.ratelimit import RateLimiter, SharedRateLimiter, rate_limiter_for
from appliance.row_ids import RowIdConverter
from appliance.secrets import SecretBox
from appliance.settings import Settings, load_settings
from appliance.tasks import BackgroundTasks
from appliance.templating import register as register_template_filters

log = logging.getLogger("appliance")

# Multipart events may carry a 2 MiB snapshot; JSON bodies are held to 64 KiB
# separately (see appliance.blueprints.api.read_json).
MAX_BODY_BYTES = 3 * 1024 * 1024


@dataclass
class Herald:
    """Long-lived state of one app instance, at ``app.extensions["herald"]``."""

    settings: Settings
    clock: Clock
    secret_box: SecretBox
    tasks: BackgroundTasks
    # Awaited as listener(event, printer, connection) inside the transaction that
    # stores a printer event (posted by the plugin or recorded by Herald, e.g.
    # printer.offline); write with using_db=connection, so that e.g. webhook
    # deliveries exist before the event endpoint answers. See services/events.py.
    event_listeners: list[Callable[..., Awaitable[None]]] = field(default_factory=list)
    # Called as listener(printer_id, printer_view) after a status is accepted (not
    # awaited; printer_view is the GET /api/v1/printers/<id> object): the live
    # dashboard subscribes here.
    status_listeners: list[Callable[[str, dict], None]] = field(default_factory=list)
    # Extension points for dependencies tests hand in (e.g. the Alexa trust store).
    deps: dict[str, Any] = field(default_factory=dict)
    rate_limiter: RateLimiter | SharedRateLimiter | None = None


# What programs call (the plugin, Alexa, apps, users' scripts); web pages stay out of
# the OpenAPI document, which describes the machine interface.
_MACHINE_PATHS = frozenset({"/healthz", "/alexa", "/oauth/authorize", "/oauth/token", "/oauth/revoke"})


class _MachineAPIProvider(OpenAPIProvider):
    def generate_rules(self):
        for rule in super().generate_rules():
            if rule.rule.startswith("/api/") or rule.rule in _MACHINE_PATHS:
                yield rule


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    run_migrations: bool = True,
    **deps: Any,
) -> Quart:
    settings = settings or load_settings()
    app = Quart(__name__)
    app.url_map.converters["int"] = RowIdConverter  # an id past 64 bits is a 404, not a 500
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["QUART_SCHEMA_CONVERT_CASING"] = False
    herald = Herald(
        settings=settings,
        clock=clock or Clock(),
        secret_box=SecretBox.from_data_dir(settings.data_path),
        tasks=BackgroundTasks(),
        deps=deps,
    )
    herald.rate_limiter = rate_limiter_for(herald)  # in memory on SQLite, in the database on PostgreSQL
    app.extensions["herald"] = herald

    QuartSchema(
        app,
        info={"title": "Herald API", "version": __version__},
        openapi_path="/api/v1/openapi.json",
        # The bundled Swagger UI page runs inline script from a CDN, which the CSP (rightly)
        # blocks; the OpenAPI document above is what clients and tools read.
        swagger_ui_path=None,
        redoc_ui_path=None,
        scalar_ui_path=None,
        security_schemes={
            "printerKey": {"type": "http", "scheme": "bearer", "bearer_format": "hpk_ printer key"},
            "accessToken": {"type": "http", "scheme": "bearer", "bearer_format": "hat_ access token"},
        },
        openapi_provider_class=_MachineAPIProvider,
    )
    install_json_provider(app)  # after QuartSchema, whose provider it extends
    register_error_handlers(app)

    @app.errorhandler(LoginRequired)
    async def _login_required(_error: LoginRequired):
        return login_redirect()

    app.before_request(check_csrf)
    register_template_filters(app)

    @app.context_processor
    async def _template_globals() -> dict[str, Any]:
        from appliance.auth import current_user

        return {
            "csrf_token": csrf_token,
            "current_user": await current_user(),
            "herald_version": __version__,
            "settings": settings,
        }

    @app.after_request
    async def _after(response):
        anon = g.get("herald_anon_csrf")
        if anon and request.cookies.get(ANON_CSRF_COOKIE) != anon:
            response.set_cookie(ANON_CSRF_COOKIE, anon, httponly=True, samesite="Lax",
                                secure=settings.secure_cookies, path="/")
        headers = response.headers
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
            "frame-ancestors 'none'",
        )
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if settings.secure_cookies:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    _register_blueprints(app)

    @app.before_serving
    async def _startup() -> None:
        await open_database(settings, run_migrations=run_migrations)
        for hook in herald.deps.get("_startup_hooks", []):
            await hook(app)
        herald.tasks.start()
        log.info("Herald %s serving at %s (database: %s)", __version__, settings.base_url,
                 "SQLite" if settings.is_sqlite else "PostgreSQL")

    @app.after_serving
    async def _shutdown() -> None:
        await herald.tasks.stop()
        for hook in herald.deps.get("_shutdown_hooks", []):
            await hook(app)
        await close_database()

    return app


def on_startup(app: Quart, hook) -> None:
    """Run ``hook(app)`` after the database is open and before background tasks start."""
    app.extensions["herald"].deps.setdefault("_startup_hooks", []).append(hook)


def on_shutdown(app: Quart, hook) -> None:
    """Run ``hook(app)`` after background tasks stopped and before the database closes."""
    app.extensions["herald"].deps.setdefault("_shutdown_hooks", []).insert(0, hook)


def on_stopping(app: Quart, hook: Callable[[Quart], None]) -> None:
    """Call ``hook(app)`` as soon as the server is told to stop, before it waits for open
    connections: long-lived responses (the dashboard's event streams) end there, so a
    graceful shutdown does not wait out its timeout for them."""
    app.extensions["herald"].deps.setdefault("_stopping_hooks", []).append(hook)


# Young-generation threshold for a serving process (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000


def tune_gc_for_serving(app: Quart) -> None:
    """Make the garbage collector cheap for a long-running server process.

    Measured with scripts/bench_ingest.py (docs/benchmarks.md, "Garbage collection"):
    CPython's collector cost Herald about 40 µs of every status request and made its
    p99 latency 50 ms, because each full collection walks every object the process
    holds -- mostly the modules of Quart, Tortoise, pydantic, authlib and ask-sdk,
    which live as long as the process. After start-up (database open, printer keys
    loaded) those objects are moved out of the collector's sight with gc.freeze(),
    and the young generation is collected every GC_YOUNG_THRESHOLD allocations
    instead of every 700. Cyclic garbage is still collected; the process's memory
    after load stayed within 3 MiB of before.

    For server entry points only (``herald serve`` and the multi-worker ASGI app):
    objects frozen are never freed, so a process that builds many apps (the tests)
    must not call this.
    """

    async def _tune(_app: Quart) -> None:
        gc.collect()
        gc.freeze()
        _gen0, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD, gen1, gen2)

    on_startup(app, _tune)


def begin_stopping(app: Quart) -> None:
    for hook in app.extensions["herald"].deps.get("_stopping_hooks", []):
        try:
            hook(app)
        except Exception:
            log.exception("stopping hook %r failed", hook)


def _register_blueprints(app: Quart) -> None:
    # One module per area; each exports `blueprint` and may export `init_app(app)`
    # to register background tasks or startup hooks.
    from appliance.blueprints import (
        account,
        accounts,
        admin,
        alexa,
        api,
        dashboard,
        health,
        oauth,
        plugin_download,
        printers,
        webhooks,
    )

    for module in (health, accounts, account, admin, api, printers, oauth, alexa, dashboard, webhooks,
                   plugin_download):
        app.register_blueprint(module.blueprint)
        init = getattr(module, "init_app", None)
        if init is not None:
            init(app)
