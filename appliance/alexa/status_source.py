"""Alexa: whose printers a request is answered for, the printer source the skill reads,
and the setup values (the Alexa OAuth client, the skill package)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from appliance.accounts.models import AccessToken, User
from appliance.alexa import sql
from appliance.alexa.device_zone import DeviceTimeZones
from appliance.alexa.notifications import remember_account
from appliance.alexa.verification import AMAZON_CERT_URL_BASE
from appliance.core.db import read_dicts, shielded
from appliance.core.errors import Invalid
from appliance.core.herald import Herald
from appliance.core.secrets import ACCESS_TOKEN_PREFIX, token_hash
from appliance.oauth import server as oauth
from appliance.oauth.models import OAuthClient
from appliance.printers.models import Printer
from appliance.printers.state import printer_state
from appliance.printers.views import build_view, is_online
from skill import StaticSource
from skill.package import build_package

_VENDOR_ID = re.compile(r"^[A-Za-z0-9]{4,40}$")


def _printer_from_row(herald: Herald, row: dict[str, Any]) -> dict[str, Any]:
    """The contract's ``<printer>``, by the same rules as the API and the dashboard
    (``services.printers.printer_view``): this process's fresher live status wins."""
    status, last_seen = row["status"], _datetime(row["last_seen_at"])
    if isinstance(status, str | bytes):
        status = json.loads(status)
    linked = row["key_hash"] is not None
    live = printer_state(herald).live.get(row["printer_id"])
    if live is not None and (last_seen is None or live.seen_at >= last_seen):
        status, last_seen = live.status, live.seen_at
    # The dashboard's rule: a fresher status in memory no longer makes a silent printer online.
    online = is_online(herald, printer_id=row["printer_id"], linked=linked, recorded_online=bool(row["online"]),
                       last_seen=last_seen)
    view = build_view(printer_id=row["printer_id"], name=row["name"], linked=linked, online=online,
                      last_seen=last_seen, status=status)
    view["spoken_name"] = row["spoken_name"]  # the skill's, not the API's: the owner's name for voice
    return view


_LAST_USED_EVERY = timedelta(seconds=60)


def _datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def source_for_request(herald: Herald, envelope: dict[str, Any]) -> StaticSource | None:
    """The printers a request is answered for: the linked account's, or the admin's in
    single-owner mode, with the Echo device's time zone (the account's when Alexa does not
    say). None when no valid account is linked."""
    now = herald.clock.now()
    if herald.settings.alexa_single_owner:
        rows = await read_dicts(sql.SINGLE_OWNER, True)
    else:
        token = _access_token(envelope)
        if not token.startswith(ACCESS_TOKEN_PREFIX):
            return None
        rows = await read_dicts(sql.LINKED_ACCOUNT, token_hash(token))
        if not rows or not _token_is_live(rows[0], now):
            return None
        last_used = _datetime(rows[0]["last_used_at"])
        if last_used is None or now - last_used > _LAST_USED_EVERY:
            await shielded(AccessToken.filter(id=rows[0]["token_id"]).update(last_used_at=now))
    if rows:
        await remember_account(herald, rows[0]["user_id"], envelope)
    time_zone = (rows[0]["time_zone"] if rows else None) or "UTC"
    if envelope.get("request", {}).get("type") in _TIMED_REQUESTS:
        time_zone = await herald.part(DeviceTimeZones).zone_for(envelope) or time_zone
    printers = [_printer_from_row(herald, row) for row in rows if row["printer_id"] is not None]
    return StaticSource(printers, time_zone, now, rows[0]["user_id"] if rows else None)


# The requests whose answers may tell a clock time: only these look up the device's zone.
_TIMED_REQUESTS = frozenset({"LaunchRequest", "IntentRequest", "Connections.Response"})


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


async def alexa_client(herald: Herald) -> OAuthClient | None:
    return await OAuthClient.filter(kind="alexa").order_by("id").first()


async def configure_alexa_client(herald: Herald, vendor_id: str, owner: User) -> OAuthClient:
    """Create the Alexa client, or point its redirect URLs at another vendor id."""
    vendor_id = vendor_id.strip()
    if not _VENDOR_ID.match(vendor_id):
        raise Invalid("The vendor id is the letters and digits shown in the Alexa developer console "
                       "(Account linking, Alexa Redirect URLs: the part after /link/).", code="invalid_vendor_id")
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


def setup_values(herald: Herald, client: OAuthClient | None) -> dict[str, Any]:
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
        "single_owner": herald.settings.alexa_single_owner,
        "verify_requests": herald.settings.alexa_verify_requests,
        "test_trust": bool(herald.settings.alexa_trust_roots_file
                           or herald.settings.alexa_cert_url_base != AMAZON_CERT_URL_BASE),
        "notifications": bool(herald.settings.alexa_client_id and herald.settings.alexa_client_secret),
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


async def skill_package(herald: Herald, user: User) -> bytes:
    values = setup_values(herald, await alexa_client(herald))
    names = [(p.name, p.spoken_name) for p in await Printer.filter(owner_id=user.id)]
    return build_package(values["endpoint"], account_linking(values), names)
