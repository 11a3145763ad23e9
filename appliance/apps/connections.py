"""App Connections: made by the portal, found by their app token, revoked by users or by the printer's end.

A connection is one app's access to one printer of one user. It holds four credentials, each
shown once (in the portal's completion redirect) and stored as a SHA-256 hash: the app API
token (``AppToken:`` header), the relay's Basic user and password, and the relay's Bearer token.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from appliance.accounts.models import User
from appliance.apps import api_keys
from appliance.apps.models import AppConnection, LiveLink
from appliance.apps.registry import KnownApp
from appliance.apps.relay_limits import RelayLimits, printer_limits
from appliance.core.db import shielded
from appliance.core.errors import HeraldError, NotFound, Unauthenticated, Unavailable, status_of
from appliance.core.herald import Herald
from appliance.core.secrets import constant_time_equal, new_token, token_hash
from appliance.core.settings import Settings
from appliance.printers.models import Event, Printer
from appliance.printers.views import owned_printer, printer_view, relay_consent
from appliance.webhooks.models import WebhookTarget

log = logging.getLogger(__name__)

APP_TOKEN_PREFIX = "hct_"  # the app API token (AppToken header)
RELAY_BEARER_PREFIX = "hcb_"  # the relay's Bearer token
_LAST_USED_EVERY = timedelta(seconds=60)


class UnknownConnection(NotFound):
    """No connection has this app token (OctoEverywhere's 603)."""

    default_code = "app_connection_unknown"


class RevokedConnection(Unauthenticated):
    """The connection was revoked, or its printer unlinked or removed (OctoEverywhere's 604)."""

    default_code = "app_connection_revoked"


class PrinterNotConnected(Unavailable):
    """The call needs the printer and it is not connected to Herald (OctoEverywhere's 601)."""

    default_code = "printer_not_connected"


def app_error_status(exc: HeraldError) -> tuple[int, bool]:
    """The HTTP status and IsUserError an app caller gets for an error (OctoEverywhere's codes)."""
    for kind, code in ((UnknownConnection, 603), (RevokedConnection, 604), (PrinterNotConnected, 601)):
        if isinstance(exc, kind):
            return code, True
    status = 400 if isinstance(exc, Unauthenticated) and not exc.challenge else status_of(exc)
    return status, status < 500


# --- the relay address ------------------------------------------------------------------


def relay_base(settings: Settings) -> str:
    return (settings.relay_url or settings.base_url).rstrip("/")


def relay_host_uses_path(settings: Settings) -> bool:
    """An IP address (or a bare name like localhost-less hosts) cannot have subdomains: use a path."""
    host = urlsplit(relay_base(settings)).hostname or ""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return "." not in host and host != "localhost"


def connection_url(settings: Settings, host_label: str) -> str:
    """The connection's relay base URL: its own host under the relay's, or a path on an IP address."""
    parts = urlsplit(relay_base(settings))
    port = f":{parts.port}" if parts.port else ""
    if relay_host_uses_path(settings):
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/relay/{host_label}"
    return f"{parts.scheme}://{host_label}.{parts.hostname}{port}"


def host_label_of(settings: Settings, host: str) -> str | None:
    """The connection label a request's Host names (``app-...`` under the relay host), or None."""
    relay_host = (urlsplit(relay_base(settings)).hostname or "").lower()
    name = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else ""
    if relay_host and name.endswith("." + relay_host):
        label = name[: -len(relay_host) - 1]
        if label.startswith("app-") and "." not in label:
            return label
    return None


# --- making one -------------------------------------------------------------------------


@dataclass(frozen=True)
class NewConnection:
    connection: AppConnection
    url: str
    app_token: str
    basic_user: str
    basic_password: str
    bearer_token: str
    local_ip: str | None
    octoprint_api_key: str | None = None  # minted by the plugin when the app asked and the owner allows


async def portal_printers(herald: Herald, user: User) -> list[dict[str, Any]]:
    """The printers the portal offers (linked or not), as the read API shows them."""
    printers = await Printer.filter(owner_id=user.id).order_by("name", "created_at")
    return [printer_view(herald, printer) for printer in printers]


def local_ip_of(view: dict[str, Any]) -> str | None:
    status = view.get("status") or {}
    value = status.get("local_ip")
    return value if isinstance(value, str) and value else None


async def create_connection(herald: Herald, user: User, app: KnownApp, printer_id: str,
                            octoprint_api_key_app_name: str = "") -> NewConnection:
    printer = await owned_printer(user, printer_id)
    if printer.key_hash is None:
        raise NotFound("This printer is not linked: link it from the Herald plugin first.", code="printer_unlinked")
    app_token = new_token(APP_TOKEN_PREFIX)
    bearer = new_token(RELAY_BEARER_PREFIX)
    basic_user = "herald-" + secrets.token_hex(8)
    basic_password = secrets.token_urlsafe(32)
    label = "app-" + secrets.token_hex(16)
    connection = await shielded(AppConnection.create(
        id=uuid.uuid4().hex, user_id=user.id, printer_id=printer.id, printer_name=printer.name,
        app_id=app.app_id, app_name=app.name, host_label=label, app_token_hash=token_hash(app_token),
        bearer_token_hash=token_hash(bearer), basic_user=basic_user,
        basic_password_hash=token_hash(basic_password),
        octoprint_api_key_app_name=octoprint_api_key_app_name, created_at=herald.clock.now(),
    ))
    log.info("App Connection %s made for %s on printer %s", connection.id, app.app_id, printer.id)
    return NewConnection(connection=connection, url=connection_url(herald.settings, label), app_token=app_token,
                         basic_user=basic_user, basic_password=basic_password, bearer_token=bearer,
                         local_ip=local_ip_of(printer_view(herald, printer)))


async def with_octoprint_api_key(herald: Herald, made: NewConnection) -> NewConnection:
    """The connection with its OctoPrint API key, when the app asked for one and the owner allows minting.

    Where the printer's last status says minting is not allowed, the app gets none (its consent page said
    so) and asks OctoPrint itself. Where it is allowed and minting fails (printer offline, the plugin
    refused), the new connection is deleted and the error shown: the app asked for a key and the owner
    expects it to get one, so a half-made connection would only confuse both.
    """
    connection = made.connection
    if not connection.octoprint_api_key_app_name:
        return made
    printer = await connection_printer(herald, connection)
    if not relay_consent(printer_view(herald, printer))["mint_api_keys"]:
        return made
    try:
        key = await api_keys.mint_api_key(herald, connection)
    except HeraldError as exc:
        await shielded(AppConnection.filter(id=connection.id).delete())
        message = f"Herald could not get an OctoPrint API key for {connection.app_name}: {exc.message}"
        kind = api_keys.PluginUnreachable if isinstance(exc, Unavailable) else api_keys.ApiKeyRefused
        raise kind(message, code=exc.code) from exc
    return replace(made, octoprint_api_key=key)


def user_printer_url(herald: Herald, printer_id: str) -> str:
    return f"{herald.settings.base_url}/printers/{printer_id}"


def completion_url(herald: Herald, return_url: str, made: NewConnection | None) -> str:
    """returnUrl with the completion's query parameters (OctoEverywhere's names and casings)."""
    if made is None:
        params: list[tuple[str, str]] = [("success", "false")]
    else:
        c = made.connection
        params = [("success", "true"), ("id", c.id), ("url", made.url), ("appApiToken", made.app_token),
                  ("printername", c.printer_name),
                  ("userPrinterAccessUrl", user_printer_url(herald, c.printer_id or ""))]
        if made.local_ip:
            params.append(("printerLastKnownLocalIp", made.local_ip))
        params += [("authBasicHttpUser", made.basic_user), ("authBasicHttpPassword", made.basic_password),
                   # OctoPod and Mobileraker read only these lower-case twins
                   ("authbasichttpuser", made.basic_user), ("authbasichttppassword", made.basic_password),
                   ("authBearerToken", made.bearer_token)]
        if made.octoprint_api_key:  # minted by the plugin (docs/apps.md); without it, never sent
            params.append(("octoPrintApiKey", made.octoprint_api_key))
    base, hash_mark, fragment = return_url.partition("#")
    joiner = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        joiner = ""
    return base + joiner + urlencode(params, quote_via=quote) + (hash_mark + fragment)


# --- the app API's credential -------------------------------------------------------------


async def connection_for_token(herald: Herald, token: str | None) -> AppConnection:
    """The live connection of an app token; 603 unknown, 604 revoked."""
    if not token:
        raise Unauthenticated("Send the App Connection's app API token in the AppToken header.",
                              code="app_token_missing")
    connection = await AppConnection.get_or_none(app_token_hash=token_hash(token.strip()))
    if connection is None:
        raise UnknownConnection("No App Connection has this app token.")
    if connection.revoked_at is not None:
        why = f" ({connection.revoked_reason})" if connection.revoked_reason else ""
        raise RevokedConnection(f"This App Connection was revoked{why}; set the printer up again.")
    now = herald.clock.now()
    if connection.last_used_at is None or now - connection.last_used_at > _LAST_USED_EVERY:
        await shielded(AppConnection.filter(id=connection.id).update(last_used_at=now))
        connection.last_used_at = now
    return connection


async def relay_connection(host_label: str, authorization: str) -> AppConnection:
    """The connection a relay request is for, checked against its Basic or Bearer credential.

    For the relay (and its placeholder today): 603 unknown, 604 revoked, 401 a missing or wrong credential.
    """
    connection = await AppConnection.get_or_none(host_label=host_label)
    if connection is None:
        raise UnknownConnection("No such App Connection.")
    if connection.revoked_at is not None:
        raise RevokedConnection("This App Connection was revoked.")
    scheme, _, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    ok = False
    if scheme.lower() == "bearer" and value:
        ok = constant_time_equal(token_hash(value), connection.bearer_token_hash)
    elif scheme.lower() == "basic" and value:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            user, password = "", ""
        ok = constant_time_equal(user, connection.basic_user) and constant_time_equal(
            token_hash(password), connection.basic_password_hash)
    if not ok:
        raise Unauthenticated("Send the App Connection's credentials (HTTP Basic or Bearer) with every request.",
                              code="relay_credentials", challenge='Basic realm="Herald App Connection"')
    return connection


async def connection_printer(herald: Herald, connection: AppConnection, *, must_be_online: bool = False) -> Printer:
    printer = await Printer.get_or_none(id=connection.printer_id) if connection.printer_id else None
    if printer is None:
        raise RevokedConnection("This App Connection's printer was removed.")
    if must_be_online and not printer_view(herald, printer)["online"]:
        raise PrinterNotConnected(f"{printer.name} is not connected to Herald right now.")
    return printer


def _utc(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


async def connection_info(herald: Herald, connection: AppConnection) -> dict[str, Any]:
    """``GET /api/appconnection/info``'s Result."""
    printer = await connection_printer(herald, connection)
    view = printer_view(herald, printer)
    online_event = await Event.filter(printer_id=printer.id, type="printer.online").order_by("-sequence").first()
    offline_event = await Event.filter(printer_id=printer.id, type="printer.offline").order_by("-sequence").first()
    connected_at = online_event.received_at if online_event else printer.linked_at
    return {
        "PrinterName": printer.name,
        "PrinterLocalIp": local_ip_of(view),
        "IsOnline": bool(view["online"]),
        "LastConnectionTimeUtc": _utc(connected_at),
        "LastDisconnectTimeUtc": _utc(offline_event.received_at if offline_event else None),
        "LastSeenTimeUtc": view["last_seen"],
        "UserFacingPrinterUrl": user_printer_url(herald, printer.id),
        "PrinterLimits": printer_limits(RelayLimits.of(herald.settings)),
    }


# --- the user's list, revoking ----------------------------------------------------------


async def list_connections(user: User) -> list[AppConnection]:
    """Every App Connection of the user that still works, newest first."""
    return await AppConnection.filter(user_id=user.id, revoked_at=None).order_by("-created_at")


async def _end(herald: Herald, connections: list[AppConnection], reason: str) -> int:
    if not connections:
        return 0
    ids = [c.id for c in connections]
    targets = [c.webhook_target_id for c in connections if c.webhook_target_id]
    now = herald.clock.now()
    await shielded(AppConnection.filter(id__in=ids, revoked_at=None).update(
        revoked_at=now, revoked_reason=reason, webhook_target_id=None, webhook_expires_at=None))
    if targets:
        await shielded(WebhookTarget.filter(id__in=targets).delete())
    await shielded(LiveLink.filter(connection_id__in=ids, ended_at=None).update(ended_at=now, ended_reason=reason))
    for hook in herald.hooks.connections_ending:  # the relay cuts their live streams
        await hook(ids)
    for connection in connections:  # the OctoPrint keys minted for them: deleted while the plugin can be asked
        if connection.octoprint_api_key_sealed:
            await api_keys.revoke_api_key(herald, connection)
    return len(ids)


async def revoke_connection(herald: Herald, user: User, connection_id: str) -> AppConnection:
    connection = await AppConnection.get_or_none(id=connection_id, user_id=user.id, revoked_at=None)
    if connection is None:
        raise NotFound("No such App Connection.")
    await _end(herald, [connection], "revoked by its owner")
    return connection


async def end_for_printers(herald: Herald, printer_ids: list[str]) -> None:
    """A printers_ending hook: unlinking or removing a printer ends its App Connections at once."""
    connections = await AppConnection.filter(printer_id__in=printer_ids, revoked_at=None)
    ended = await _end(herald, connections, "the printer was unlinked or removed")
    if ended:
        log.info("ended %d App Connection(s) of printers %s", ended, ", ".join(printer_ids))
