"""The composition root: ``create_app`` builds one Herald, wires every area and runs one lifespan.

Nothing happens at import time, and no area imports this module: each area exports
its blueprint, its rules and its parts, and this is the one place that puts them
together -- which blueprints serve, which part each area gets, who listens to whose
events, and every background task (its name, what it runs, whether it runs in one
process at a time under a lease).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any

from quart import Quart, g, request
from quart_schema import QuartSchema
from quart_schema.openapi import OpenAPIProvider

from appliance import __version__
from appliance.accounts import admin_routes, settings_routes, setup
from appliance.accounts import routes as accounts_routes
from appliance.accounts.auth import (
    ANON_CSRF_COOKIE,
    LoginRequired,
    check_csrf,
    csrf_token,
    current_user,
    login_redirect,
)
from appliance.alexa import routes as alexa_routes
from appliance.alexa.certificates import CachingCertFetcher
from appliance.alexa.device_zone import DeviceTimeZones
from appliance.alexa.notifications import AlexaNotifier, purge_notifications
from appliance.alexa.reminders import ReminderKeeper
from appliance.alexa.verification import (
    AMAZON_CERT_URL_BASE,
    RequestVerifier,
    default_trust_roots,
    trust_roots_from_file,
)
from appliance.apps import api_keys as app_api_keys
from appliance.apps import connections as app_connections
from appliance.apps import live_links as app_live_links
from appliance.apps import notifications as app_notifications
from appliance.apps import owner_access, owner_routes
from appliance.apps import routes as apps_routes
from appliance.apps.api_keys import PluginControlSeat
from appliance.apps.relay_use import record_relay_use
from appliance.core import health, openapi_doc
from appliance.core.clock import Clock
from appliance.core.csp import page_policy
from appliance.core.db import close_database, open_database, shielded
from appliance.core.errors import register_error_handlers
from appliance.core.herald import HERALD_KEY, Herald, herald_of
from appliance.core.jsonbody import install_json_provider
from appliance.core.leases import new_holder, run_periodically
from appliance.core.netaddr import client_scheme, https_address_for
from appliance.core.ratelimit import SharedRateLimiter, rate_limiter_for
from appliance.core.row_ids import DigitsConverter, RowIdConverter
from appliance.core.secrets import SecretBox
from appliance.core.settings import Settings, load_settings
from appliance.core.slowbodies import SlowBodyGuard
from appliance.core.storage import DiskState
from appliance.core.tasks import BackgroundTasks
from appliance.core.templating import register as register_template_filters
from appliance.core.times import iso_utc
from appliance.mqtt import routes as mqtt_routes
from appliance.mqtt.broker import BrokerLink
from appliance.mqtt.publishing import HomeAssistantPublisher
from appliance.oauth import routes as oauth_routes
from appliance.oauth.server import OAuthServer
from appliance.printers import (
    api_routes,
    dashboard_routes,
    keys,
    maintenance,
    manage,
    plugin_routes,
    status,
)
from appliance.printers import routes as printer_routes
from appliance.printers.dashboard_routes import DashboardPages
from appliance.printers.live import LiveHub
from appliance.printers.plugin_archive import PluginArchive
from appliance.printers.state import PrinterState
from appliance.relay import control_routes
from appliance.relay import liveness as relay_liveness
from appliance.relay import routes as relay_routes
from appliance.relay.commands import TunnelControl
from appliance.relay.gateway import RelayGateway
from appliance.relay.peers import RelayPeers
from appliance.relay.registry import TunnelRegistry
from appliance.webhooks import enqueue as webhook_enqueue
from appliance.webhooks import routes as webhook_routes
from appliance.webhooks.delivery import DeliveryWorker, recover_deliveries
from appliance.webhooks.delivery import purge as purge_deliveries

log = logging.getLogger("appliance")

# Multipart events may carry a 2 MiB snapshot; JSON bodies are held to 64 KiB
# separately (see appliance.core.jsonbody).
MAX_BODY_BYTES = 3 * 1024 * 1024
PURGE_EVERY = 3600.0  # seconds between the hourly clean-ups (purges under a lease)

# What programs call (the plugin, Alexa, apps, users' scripts); web pages stay out of
# the OpenAPI document, which describes the machine interface.
_MACHINE_PATHS = frozenset({"/healthz", "/alexa", "/oauth/authorize", "/oauth/token", "/oauth/revoke"})

# Every blueprint Herald serves, in registration order.
BLUEPRINTS = (
    health.blueprint,
    accounts_routes.blueprint,
    settings_routes.blueprint,
    admin_routes.blueprint,
    api_routes.blueprint,
    printer_routes.blueprint,
    oauth_routes.blueprint,
    alexa_routes.blueprint,
    dashboard_routes.blueprint,
    webhook_routes.blueprint,
    plugin_routes.blueprint,
    apps_routes.blueprint,
    mqtt_routes.blueprint,
    relay_routes.blueprint,
    owner_routes.blueprint,
    control_routes.blueprint,
)


class _MachineAPIProvider(OpenAPIProvider):
    def schema(self):
        return openapi_doc.complete(super().schema())

    def generate_rules(self):
        for rule in super().generate_rules():
            if rule.rule.startswith("/api/v1/") or rule.rule in _MACHINE_PATHS:
                yield rule


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    run_migrations: bool = True,
    alexa_trust_roots: list[Any] | None = None,
    alexa_cert_fetcher: Callable[..., Any] | None = None,
) -> Quart:
    """The app. Tests hand in their own clock, and the Alexa trust store and certificate fetcher."""
    settings = settings or load_settings()
    clock = clock or Clock()
    app = Quart(__name__)
    app.url_map.converters["int"] = RowIdConverter  # an id past 64 bits is a 404, not a 500
    app.url_map.converters["digits"] = DigitsConverter
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["QUART_SCHEMA_CONVERT_CASING"] = False
    secret_box = SecretBox.from_data_dir(settings.data_path)
    herald = Herald(
        settings=settings,
        clock=clock,
        secret_box=secret_box,
        tasks=BackgroundTasks(),
        # in memory on SQLite, in the database (shared by every process) on PostgreSQL
        rate_limiter=rate_limiter_for(settings, clock, secret_box),
    )
    app.extensions[HERALD_KEY] = herald

    _install_http(app, herald)
    # A deadline per request body and a cap on unfinished bodies per client (slow clients).
    app.asgi_app = SlowBodyGuard(app.asgi_app, seconds=float(settings.request_body_seconds),  # type: ignore[method-assign,assignment]
                                 per_client=int(settings.uploads_per_client),
                                 trusted_proxies=tuple(settings.trusted_proxies))
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)

    # --- the areas' parts, listeners and background tasks ---
    holder = new_holder()  # this process's name on the leases of periodic jobs

    def periodic(name: str, job: Callable[[], Any], every: float, check_every: float | None = None) -> None:
        """A job that runs every ``every`` seconds in one process at a time (a database lease)."""
        herald.tasks.add(name, lambda: run_periodically(
            name, job, every=every, holder=holder, clock=clock,
            **({"check_every": check_every} if check_every else {})))

    # printers: the key cache and status store, offline detection, purging
    # --- storage: a full data disk is told, not a 500 (core/storage.py)
    disk = herald.provide(DiskState())

    async def storage_rows(_herald: Herald) -> list[tuple[str, str]]:
        if disk.full_since is None:
            return [("Data disk", "ok")]
        return [("Data disk", f"FULL since {iso_utc(disk.full_since)}: writes fail until there is room ({disk.detail})")]

    herald.hooks.system_rows.append(storage_rows)

    printers = herald.provide(PrinterState(started_at=clock.now()))
    herald.provide(PluginArchive(settings.plugin_source or None))
    herald.tasks.add("status-flush", lambda: status.status_flusher(herald))
    herald.tasks.add("printer-cache", lambda: keys.cache_revalidator(herald))
    # deleting a user removes their printers first, so every printers_ending hook runs for them
    herald.hooks.users_ending.append(lambda user_id: manage.delete_printers_of(herald, user_id))
    periodic("offline-detection", lambda: maintenance.detect_offline(herald), settings.offline_check_interval)
    periodic("purge", lambda: maintenance.purge(herald), PURGE_EVERY, check_every=60.0)

    # the live dashboard: a hub per process, bridged across processes on PostgreSQL
    hub = herald.provide(LiveHub())
    herald.provide(DashboardPages())
    herald.hooks.status_listeners.append(hub.publish)
    herald.hooks.stopping.append(hub.close_all)
    bridge = None
    if not settings.is_sqlite:
        from appliance.printers.live_pg import LiveBridge  # asyncpg: PostgreSQL installs only

        bridge = herald.provide(LiveBridge(herald, hub))
        herald.hooks.status_flushed.append(bridge.notify)
        herald.tasks.add("live-listen", bridge.listen)
        herald.tasks.add("live-deliver", bridge.deliver)

    # webhooks: every stored event is enqueued in the event's own transaction
    worker = herald.provide(DeliveryWorker(herald))

    async def enqueue(event, printer, connection) -> None:
        await webhook_enqueue.enqueue_event(herald, event, printer, connection, notify=worker.notify)

    async def purge_webhooks() -> None:
        removed = await shielded(purge_deliveries(herald))
        if removed:
            log.info("purged %d old webhook deliveries", removed)

    herald.hooks.event_listeners.append(enqueue)
    herald.tasks.add("webhook-delivery", worker.run)
    periodic("webhook-purge", purge_webhooks, PURGE_EVERY, check_every=60.0)

    # rate limits kept in PostgreSQL expire in one process at a time
    if isinstance(herald.rate_limiter, SharedRateLimiter):
        periodic("rate-limit-purge", herald.rate_limiter.purge, PURGE_EVERY, check_every=60.0)

    # apps (App Connections): a printer's end ends its connections; a print's end ends the live
    # links made to last as long as it; notification registrations expire
    herald.hooks.printers_ending.append(lambda ids: app_connections.end_for_printers(herald, ids))

    async def end_live_links(event, printer, connection) -> None:
        await app_live_links.end_with_print(herald, event, printer, connection)

    async def expire_app_webhooks() -> None:
        await shielded(app_notifications.expire_webhooks(herald))

    herald.hooks.event_listeners.append(end_live_links)
    periodic("app-webhook-expiry", expire_app_webhooks, PURGE_EVERY, check_every=60.0)

    # relay: the plugins' tunnels; App Connection addresses go through them (in front of the
    # body guard: a relayed upload is paced by the tunnel); ending a printer closes its tunnel,
    # ending a connection cuts its streams, here at once and from other processes within a second
    tunnels = herald.provide(TunnelRegistry())
    herald.provide(PluginControlSeat())
    gateway = RelayGateway(app.asgi_app, herald, tunnels)
    app.asgi_app = gateway  # type: ignore[method-assign]
    if not settings.is_sqlite:  # several processes: hops to the process holding a tunnel (relay/peers.py)
        peers = gateway.peers = herald.provide(RelayPeers(herald, holder))
        herald.tasks.add("relay-peer-listener", lambda: peers.serve(gateway.internal))
        herald.tasks.add("relay-holder-refresh", peers.keep_fresh)
    herald.hooks.printers_ending.append(
        lambda ids: tunnels.close_printers(ids, "the printer was unlinked or removed"))
    herald.hooks.connections_ending.append(tunnels.end_connections)
    herald.tasks.add("relay-housekeeping", lambda: tunnels.housekeeping(relay_liveness.ended))
    herald.hooks.stopping.append(lambda: _spawn(tunnels.close_all()))
    # the relay's other seams: plugin-side commands (minting and revoking OctoPrint API keys for
    # App Connections) go over the tunnel; keys left to revoke while a printer was away go when its
    # tunnel comes back; each finished relayed stream adds its bytes to its connection's audit
    herald.part(PluginControlSeat).control = TunnelControl(herald)
    tunnels.attached_listeners.append(lambda printer_id: app_api_keys.revoke_pending_api_keys(herald, printer_id))
    tunnels.stream_closed_listeners.append(
        lambda connection_id, up, down: record_relay_use(herald, connection_id, up, down))
    # The owner's relayed origin (own-<hex> hosts, or the separate origin) answers before every other
    # hook (check_csrf among them) when the gateway did not forward: its requests are OctoPrint's,
    # never Herald's, and no Herald page is ever served there.
    app.before_request_funcs.setdefault(None, []).insert(0, owner_routes.owner_host_guard)
    # the printer page's "Open OctoPrint" form may lead there (its CSP's form-action)
    herald.provide(printer_routes.OpenOctoPrintTarget(owner_access.entry_form_source))

    # oauth and alexa
    herald.provide(OAuthServer(herald))
    own_fetcher = None
    if alexa_cert_fetcher is None:
        own_fetcher = alexa_cert_fetcher = CachingCertFetcher()
    if alexa_trust_roots is None and settings.alexa_trust_roots_file:
        roots: Any = trust_roots_from_file(settings.alexa_trust_roots_file)
    else:
        roots = alexa_trust_roots if alexa_trust_roots is not None else default_trust_roots
    herald.provide(RequestVerifier(
        trust_roots=roots,
        fetch=alexa_cert_fetcher,
        skill_id=lambda: settings.alexa_skill_id,
        now=clock.now,
        cert_url_base=lambda: settings.alexa_cert_url_base,
    ))
    device_zones = herald.provide(DeviceTimeZones(now=clock.now))
    notifier = herald.provide(AlexaNotifier(herald, now=clock.now, holder=holder))
    herald.hooks.event_listeners.append(notifier.on_event)
    herald.tasks.add("alexa-notify", notifier.run)
    periodic("alexa-notification-purge", lambda: purge_notifications(herald), PURGE_EVERY, check_every=60.0)
    # alexa reminders: status pushes are noted in memory, print ends in the reminder rows; a task
    # in every process compares, claims due reminders and sends skill messages
    reminders = herald.provide(ReminderKeeper(herald, now=clock.now, holder=holder))
    herald.hooks.status_listeners.append(reminders.on_status)
    herald.hooks.event_listeners.append(reminders.on_event)
    herald.tasks.add("alexa-reminders", reminders.run)

    # mqtt (Home Assistant): status pushes, events and a printer's end only queue messages; one task
    # per process holds the broker connection and drains the queue (appliance/mqtt/broker.py)
    home_assistant = herald.provide(HomeAssistantPublisher(herald))
    herald.hooks.status_listeners.append(home_assistant.on_status)
    herald.hooks.event_listeners.append(home_assistant.on_event)
    herald.hooks.printers_ending.append(home_assistant.on_printers_ending)
    herald.hooks.printer_changed.append(home_assistant.on_printer_changed)
    broker = herald.provide(BrokerLink(herald, home_assistant))
    herald.tasks.add("mqtt", broker.run)

    async def mqtt_rows(_herald: Herald) -> list[tuple[str, str]]:
        state = broker.state
        return [("MQTT (Home Assistant)", state.status + (f" ({state.broker})" if state.broker else "")
                 + (f": {state.last_error}" if state.status == "retrying" else ""))]

    herald.hooks.system_rows.append(mqtt_rows)

    @app.while_serving
    async def lifespan() -> AsyncGenerator[None, None]:
        await open_database(settings, run_migrations=run_migrations)
        printers.started_at = clock.now()  # offline detection counts from here, so a restart never flaps
        await keys.preload_keys(herald)
        await _report_recovery(herald)
        await setup.announce_setup_link(herald)
        if not settings.alexa_verify_requests:
            log.warning("HERALD_ALEXA_VERIFY_REQUESTS is off: /alexa accepts requests that Amazon "
                        "did not sign. Anyone who can reach this server can read printer status. "
                        "Turn it back on unless you are testing locally.")
        if settings.alexa_trust_roots_file or settings.alexa_cert_url_base != AMAZON_CERT_URL_BASE:
            log.warning("HERALD_ALEXA_TRUST_ROOTS_FILE or HERALD_ALEXA_CERT_URL_BASE is set: /alexa trusts "
                        "signing certificates that are not Amazon's. These settings are for tests only.")
        await worker.open()
        await notifier.recover()
        if herald.tune_gc:
            _freeze_startup_objects()
        herald.tasks.start()
        log.info("Herald %s serving at %s (database: %s)", __version__, settings.base_url,
                 "SQLite" if settings.is_sqlite else "PostgreSQL")
        yield
        # Each step runs even when one before it fails (logged), and the database always closes: a
        # step that raised must not leave the last statuses unflushed or the connections open.
        clean = True
        steps: list[tuple[str, Callable[[], Awaitable[Any]] | None]] = [
            ("background tasks", herald.tasks.stop),
            ("webhook worker", worker.close),
            ("plugin bridge", bridge.close if bridge is not None else None),
            ("webcam fetcher", own_fetcher.close if own_fetcher is not None else None),
            ("device time zones", device_zones.close),
            ("alexa notifications", notifier.close),
            ("alexa reminders", reminders.close),
            ("last statuses", lambda: status.flush_status(herald)),  # before the database closes
        ]
        try:
            for name, step in steps:
                if step is None:
                    continue
                try:
                    await step()
                except Exception:
                    clean = False
                    log.exception("Stopping %s failed; going on with the rest of the stop", name)
        finally:
            await close_database()
        if clean:
            _running_marker(settings).unlink(missing_ok=True)  # a clean stop: the next start is no recovery

    return app


# --- recovery: what a start after a crash finds and puts back -------------------------------

RUNNING_MARKER = "herald.running"


def _running_marker(settings: Settings) -> Path:
    """A file that exists while a single-process Herald serves: found at start, the last run crashed."""
    return settings.data_path / RUNNING_MARKER


async def _report_recovery(herald: Herald) -> None:
    """Requeue deliveries a stopped process left in flight, and log what was recovered."""
    settings = herald.settings
    marker = _running_marker(settings) if settings.workers <= 1 else None
    unclean = marker is not None and marker.exists()
    requeued, leased = await recover_deliveries(herald)
    statuses, newest = await status.restored_statuses()
    if unclean or requeued:
        log.warning(
            "Recovered after %s: %d webhook deliveries left in flight went back to the queue%s%s; "
            "the last status of %d printers restored (newest written %s; any later status comes with the "
            "printers' next check-in)",
            "an unclean stop" if unclean else "a stopped process", len(requeued),
            f" (ids {', '.join(map(str, requeued[:20]))}{', ...' if len(requeued) > 20 else ''})" if requeued else "",
            f", {leased} still leased by another process" if leased else "",
            statuses, iso_utc(newest) or "never")
    else:
        log.info("Start: no deliveries left in flight; the last status of %d printers restored", statuses)
    if marker is not None:
        try:
            marker.write_text(f"{os.getpid()}\n")
        except OSError as exc:
            log.warning("Could not write %s (%s): a crash will not be told at the next start", marker, exc)


def _install_http(app: Quart, herald: Herald) -> None:
    """The OpenAPI document, error mapping, CSRF, template globals and security headers."""
    settings = herald.settings
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
        return {
            # set when an https Herald is opened over plain http: base.html says where to go
            "https_address": https_address_for(request, settings.base_url, settings.trusted_proxies),
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
        headers.setdefault("Content-Security-Policy", page_policy())
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if settings.secure_cookies and client_scheme(request, settings.trusted_proxies) == "https":
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response


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
    herald_of(app).tune_gc = True


def _freeze_startup_objects() -> None:
    gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, gen1, gen2)


_spawned: set[asyncio.Task] = set()


def _spawn(coro) -> None:
    """Run a coroutine from a synchronous stopping hook (they are called inside the loop)."""
    task = asyncio.get_running_loop().create_task(coro)
    _spawned.add(task)
    task.add_done_callback(_spawned.discard)


def begin_stopping(app: Quart) -> None:
    """The server was told to stop: end long-lived responses now, before it waits for them."""
    for hook in herald_of(app).hooks.stopping:
        try:
            hook()
        except Exception:
            log.exception("stopping hook %r failed", hook)
