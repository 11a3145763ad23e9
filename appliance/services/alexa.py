"""Alexa: whose printers a request is answered for, the printer source the skill reads,
and the setup values (the Alexa OAuth client, the skill package)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from appliance.db import read_dicts, shielded
from appliance.errors import APIError
from appliance.models import AccessToken, OAuthClient, Printer, User
from appliance.secrets import ACCESS_TOKEN_PREFIX, token_hash
from appliance.services import oauth
from appliance.services.printers import build_view, printer_state
from skill import StaticSource
from skill.package import build_package

_VENDOR_ID = re.compile(r"^[A-Za-z0-9]{4,40}$")


def _printer_from_row(herald, row: dict[str, Any]) -> dict[str, Any]:
    """The contract's ``<printer>``, by the same rules as the API and the dashboard
    (``services.printers.printer_view``): this process's fresher live status wins."""
    status, last_seen, online = row["status"], _datetime(row["last_seen_at"]), bool(row["online"])
    if isinstance(status, str | bytes):
        status = json.loads(status)
    linked = row["key_hash"] is not None
    live = printer_state(herald).live.get(row["printer_id"])
    if live is not None and (last_seen is None or live.seen_at >= last_seen):
        status, last_seen = live.status, live.seen_at
        online = online or linked
    return build_view(printer_id=row["printer_id"], name=row["name"], linked=linked, online=online and linked,
                      last_seen=last_seen, status=status)


# The Alexa path reads with one plain SQL query: building queries through the ORM
# cost about 1 ms each on this hardware, several times the query itself, and on
# SQLite every query waits for the connection while a write transaction (the status
# flush) holds it, so one round trip instead of two also halves those waits.
# Writes still go through the models. On SQLite the read runs on the event loop's
# thread without waiting for aiosqlite's (db.read_dicts says why).
_PRINTER_COLUMNS = ("p.id AS printer_id, p.name, p.key_hash, p.last_seen_at, p.status, p.online, "
                    "p.created_at")
_LINKED_SQL = (
    "SELECT t.id AS token_id, t.scope, t.expires_at, t.revoked_at, t.last_used_at, u.time_zone, "
    + _PRINTER_COLUMNS +
    " FROM access_tokens t JOIN users u ON u.id = t.user_id"
    " LEFT JOIN printers p ON p.owner_id = t.user_id"
    " WHERE t.token_hash = ? ORDER BY p.name, p.created_at")
_SINGLE_OWNER_SQL = (
    "SELECT u.time_zone, " + _PRINTER_COLUMNS +
    " FROM users u LEFT JOIN printers p ON p.owner_id = u.id"
    " WHERE u.id = (SELECT MIN(id) FROM users WHERE is_admin = ?) ORDER BY p.name, p.created_at")
_LAST_USED_EVERY = timedelta(seconds=60)


def _datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def source_for_request(herald, envelope: dict[str, Any]) -> StaticSource | None:
    """The printers a request is answered for: the linked account's, or the admin's in
    single-owner mode. None when no valid account is linked."""
    now = herald.clock.now()
    if herald.settings.alexa_single_owner:
        rows = await read_dicts(_SINGLE_OWNER_SQL, True)
    else:
        token = _access_token(envelope)
        if not token.startswith(ACCESS_TOKEN_PREFIX):
            return None
        rows = await read_dicts(_LINKED_SQL, token_hash(token))
        if not rows or not _token_is_live(rows[0], now):
            return None
        last_used = _datetime(rows[0]["last_used_at"])
        if last_used is None or now - last_used > _LAST_USED_EVERY:
            await shielded(AccessToken.filter(id=rows[0]["token_id"]).update(last_used_at=now))
    time_zone = rows[0]["time_zone"] if rows else "UTC"
    printers = [_printer_from_row(herald, row) for row in rows if row["printer_id"] is not None]
    return StaticSource(printers, time_zone or "UTC", now)


def _access_token(envelope: dict[str, Any]) -> str:
    system = (envelope.get("context") or {}).get("System") or {}
    token = (system.get("user") or {}).get("accessToken") or (
        ((envelope.get("session") or {}).get("user") or {}).get("accessToken"))
    return str(token or "")


def _token_is_live(row: dict[str, Any], now, scope: str = "printers:read") -> bool:
    expires_at = _datetime(row["expires_at"])
    if row["revoked_at"] is not None or (expires_at is not None and expires_at <= now):
        return False
    return scope in str(row["scope"]).split()


async def alexa_client(herald) -> OAuthClient | None:
    return await OAuthClient.filter(kind="alexa").order_by("id").first()


async def configure_alexa_client(herald, vendor_id: str, owner: User) -> OAuthClient:
    """Create the Alexa client, or point its redirect URLs at another vendor id."""
    vendor_id = vendor_id.strip()
    if not _VENDOR_ID.match(vendor_id):
        raise APIError(400, "invalid_vendor_id",
                       "The vendor id is the letters and digits shown in the Alexa developer console "
                       "(Account linking, Alexa Redirect URLs: the part after /link/).")
    uris = oauth.alexa_redirect_uris(vendor_id)
    client = await alexa_client(herald)
    if client is None:
        client, _secret = await oauth.create_client(herald, name="Alexa", redirect_uris=uris,
                                                    kind="alexa", owner=owner)
    else:
        client.redirect_uris = uris
        await client.save(update_fields=["redirect_uris"])
    return client


def vendor_id_of(client: OAuthClient | None) -> str:
    if client is None or not client.redirect_uris:
        return ""
    return client.redirect_uris[0].rsplit("/", 1)[-1]


def setup_values(herald, client: OAuthClient | None) -> dict[str, Any]:
    base = herald.settings.base_url
    values: dict[str, Any] = {
        "endpoint": f"{base}/alexa",
        "authorization_uri": f"{base}/oauth/authorize",
        "token_uri": f"{base}/oauth/token",
        "scopes": ["printers:read"],
        "scheme": "HTTP Basic (Recommended)",
        "token_seconds": herald.settings.oauth_access_token_minutes * 60,
        "https": base.startswith("https://"),
        "skill_id": herald.settings.alexa_skill_id,
        "client_id": "", "client_secret": "", "redirect_uris": [], "vendor_id": "",
    }
    if client is not None:
        values.update(client_id=client.client_id,
                      client_secret=herald.secret_box.decrypt(client.secret_encrypted),
                      redirect_uris=list(client.redirect_uris), vendor_id=vendor_id_of(client))
    return values


def account_linking(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "AUTH_CODE",
        "authorizationUrl": values["authorization_uri"],
        "accessTokenUrl": values["token_uri"],
        "clientId": values["client_id"],
        "clientSecret": values["client_secret"],
        "accessTokenScheme": "HTTP_BASIC",
        "scopes": values["scopes"],
        "domains": [],
        "defaultTokenExpirationInSeconds": values["token_seconds"],
        "skipOnEnablement": False,
    }


async def skill_package(herald, user: User) -> bytes:
    values = setup_values(herald, await alexa_client(herald))
    names = [p.name for p in await Printer.filter(owner_id=user.id)]
    return build_package(values["endpoint"], account_linking(values), names)
