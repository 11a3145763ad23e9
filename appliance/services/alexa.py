"""Alexa: whose printers a request is answered for, the printer source the skill reads,
and the setup values (the Alexa OAuth client, the skill package)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from appliance.errors import APIError
from appliance.models import OAuthClient, Printer, User
from appliance.services import oauth
from skill import StaticSource
from skill.package import build_package

_VENDOR_ID = re.compile(r"^[A-Za-z0-9]{4,40}$")


def printer_dict(printer: Printer, now, offline_after: int) -> dict[str, Any]:
    """A printer in the contract's ``<printer>`` shape."""
    seen = printer.last_seen_at
    online = seen is not None and now - seen <= timedelta(seconds=offline_after)
    return {
        "id": printer.id,
        "name": printer.name,
        "linked": printer.key_hash is not None,
        "online": online,
        "last_seen": seen.isoformat().replace("+00:00", "Z") if seen else None,
        "status": printer.status,
    }


async def load_source(herald, user: User) -> StaticSource:
    """The skill's printer status source for one account, read from the database."""
    now = herald.clock.now()
    printers = await Printer.filter(owner_id=user.id).order_by("name", "created_at")
    return StaticSource([printer_dict(p, now, herald.settings.offline_after) for p in printers],
                        user.time_zone or "UTC", now)


async def answering_user(herald, envelope: dict[str, Any]) -> User | None:
    """The account a request is answered for: the linked one, or the admin in single-owner mode."""
    if herald.settings.alexa_single_owner:
        return await User.filter(is_admin=True).order_by("id").first()
    system = (envelope.get("context") or {}).get("System") or {}
    token = (system.get("user") or {}).get("accessToken") or (
        ((envelope.get("session") or {}).get("user") or {}).get("accessToken"))
    if not token:
        return None
    return await oauth.user_for_access_token(str(token), herald.clock.now())


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
