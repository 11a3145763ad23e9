"""Alexa: whose printers a request is answered for, the printer source the skill reads,
and the setup values (the Alexa OAuth client, the skill package)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise import Tortoise

from appliance.db import shielded
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
    live = printer_state(herald).live.get(row["id"])
    if live is not None and (last_seen is None or live.seen_at >= last_seen):
        status, last_seen = live.status, live.seen_at
        online = online or linked
    return build_view(printer_id=row["id"], name=row["name"], linked=linked, online=online and linked,
                      last_seen=last_seen, status=status)


# The Alexa path reads with plain SQL: building the same queries through the ORM
# cost about 1 ms each on this hardware, several times the query itself, and every
# Alexa request makes two of them. Writes still go through the models.
_PRINTERS_SQL = ("SELECT id, name, key_hash, last_seen_at, status, online FROM printers "
                 "WHERE owner_id = ? ORDER BY name, created_at")
_TOKEN_SQL = ("SELECT t.id, t.scope, t.expires_at, t.revoked_at, t.last_used_at, t.user_id, u.time_zone "
              "FROM access_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?")
_ADMIN_SQL = "SELECT id, time_zone FROM users WHERE is_admin = ? ORDER BY id LIMIT 1"
_LAST_USED_EVERY = timedelta(seconds=60)


async def _select(sql: str, *params: Any) -> list[dict[str, Any]]:
    connection = Tortoise.get_connection("default")
    if connection.capabilities.dialect == "postgres":
        parts = sql.split("?")
        sql = parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))
    return await connection.execute_query_dict(sql, list(params))


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
        rows = await _select(_ADMIN_SQL, True)
        if not rows:
            return StaticSource([], "UTC", now)
        user_id, time_zone = rows[0]["id"], rows[0]["time_zone"]
    else:
        account = await _linked_account(_access_token(envelope), now)
        if account is None:
            return None
        user_id, time_zone = account
    printers = await _select(_PRINTERS_SQL, user_id)
    return StaticSource([_printer_from_row(herald, row) for row in printers],
                        time_zone or "UTC", now)


def _access_token(envelope: dict[str, Any]) -> str:
    system = (envelope.get("context") or {}).get("System") or {}
    token = (system.get("user") or {}).get("accessToken") or (
        ((envelope.get("session") or {}).get("user") or {}).get("accessToken"))
    return str(token or "")


async def _linked_account(token: str, now, scope: str = "printers:read") -> tuple[int, str] | None:
    """(user id, time zone) of a live ``hat_`` token with ``scope``; records its use."""
    if not token.startswith(ACCESS_TOKEN_PREFIX):
        return None
    rows = await _select(_TOKEN_SQL, token_hash(token))
    if not rows:
        return None
    row = rows[0]
    expires_at = _datetime(row["expires_at"])
    if row["revoked_at"] is not None or (expires_at is not None and expires_at <= now):
        return None
    if scope not in str(row["scope"]).split():
        return None
    last_used = _datetime(row["last_used_at"])
    if last_used is None or now - last_used > _LAST_USED_EVERY:
        await shielded(AccessToken.filter(id=row["id"]).update(last_used_at=now))
    return row["user_id"], row["time_zone"]


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
