"""Which apps may use the portal: the built-in catalogue (OctoPod, Mobileraker) and the admin's registrations."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from appliance.apps.models import RegisteredApp
from appliance.core.db import shielded
from appliance.core.errors import Conflict, Invalid, NotFound
from appliance.core.herald import Herald

APP_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
MAX_PREFIX = 500


@dataclass(frozen=True)
class KnownApp:
    app_id: str
    name: str
    logo_url: str
    return_url_prefixes: tuple[str, ...]
    builtin: bool = False
    enabled: bool = True
    extra: dict = field(default_factory=dict, compare=False)


# Known out of the box (HERALD_APPS_BUILTIN=false turns this off): the two apps that integrate
# App Connections today, with the custom schemes their portal flows return to.
BUILTIN_APPS: tuple[KnownApp, ...] = (
    KnownApp("octopod", "OctoPod", "", ("octopod://",), builtin=True),
    KnownApp("mobileraker", "Mobileraker", "", ("mobileraker://",), builtin=True),
)


def _builtin(herald: Herald) -> dict[str, KnownApp]:
    return {app.app_id: app for app in BUILTIN_APPS} if herald.settings.apps_builtin else {}


def _from_row(row: RegisteredApp, builtin: bool) -> KnownApp:
    return KnownApp(row.app_id, row.name, row.logo_url, tuple(row.return_url_prefixes), builtin=builtin,
                    enabled=row.enabled)


async def known_apps(herald: Herald) -> list[KnownApp]:
    """Every app the admin page shows: built-ins (as the admin left them) and registrations."""
    apps = dict(_builtin(herald))
    for row in await RegisteredApp.all().order_by("app_id"):
        apps[row.app_id] = _from_row(row, row.app_id in apps)
    return sorted(apps.values(), key=lambda app: app.app_id)


async def find_app(herald: Herald, app_id: str) -> KnownApp | None:
    """The enabled app with this id (matched in any case), or None."""
    app_id = (app_id or "").strip().lower()
    row = await RegisteredApp.get_or_none(app_id=app_id)
    if row is not None:
        return _from_row(row, app_id in _builtin(herald)) if row.enabled else None
    return _builtin(herald).get(app_id)


def return_url_allowed(app: KnownApp, return_url: str) -> bool:
    return any(return_url.startswith(prefix) for prefix in app.return_url_prefixes)


def clean_prefix(prefix: str) -> str:
    prefix = prefix.strip()
    if not prefix or len(prefix) > MAX_PREFIX:
        raise Invalid(f"Each return-URL prefix must have 1 to {MAX_PREFIX} characters.", field="prefixes")
    scheme = urlsplit(prefix).scheme
    if not scheme or not re.match(r"^[a-z][a-z0-9+.-]*$", scheme) or not prefix.startswith(scheme + "://"):
        raise Invalid(f"{prefix!r} is not a URL prefix: start it with a scheme, such as myapp:// or "
                      "https://app.example.com/done.", field="prefixes")
    if scheme in ("http", "https") and not urlsplit(prefix).hostname:
        raise Invalid(f"{prefix!r} names no host; an http(s) prefix must include the host.", field="prefixes")
    if scheme in ("javascript", "data", "vbscript", "file"):
        raise Invalid(f"{scheme}: URLs cannot be return URLs.", field="prefixes")
    return prefix


async def register_app(herald: Herald, app_id: str, name: str, logo_url: str, prefixes: list[str]) -> RegisteredApp:
    app_id = (app_id or "").strip().lower()
    if not APP_ID.match(app_id):
        raise Invalid("The app id is 1 to 100 lower-case letters, digits, '.', '_' or '-'.", field="app_id")
    name = " ".join((name or "").split())
    if not name or len(name) > 100:
        raise Invalid("Give the app a name of 1 to 100 characters.", field="name")
    logo_url = (logo_url or "").strip()
    if logo_url and (urlsplit(logo_url).scheme != "https" or len(logo_url) > 2048):
        raise Invalid("The logo URL must be an https:// address (at most 2,048 characters).", field="logo_url")
    cleaned = [clean_prefix(p) for p in prefixes if p.strip()]
    if not cleaned:
        raise Invalid("Give at least one allowed return-URL prefix.", field="prefixes")
    if await RegisteredApp.exists(app_id=app_id):
        raise Conflict(f"An app with the id {app_id} is registered already.", field="app_id")
    return await shielded(RegisteredApp.create(app_id=app_id, name=name, logo_url=logo_url,
                                               return_url_prefixes=cleaned))


async def set_enabled(herald: Herald, app_id: str, enabled: bool) -> None:
    """Turn an app on or off; turning a built-in one off stores it as a disabled registration."""
    row = await RegisteredApp.get_or_none(app_id=app_id)
    if row is None:
        builtin = _builtin(herald).get(app_id)
        if builtin is None:
            raise NotFound("No such app.")
        await shielded(RegisteredApp.create(app_id=builtin.app_id, name=builtin.name, logo_url=builtin.logo_url,
                                            return_url_prefixes=list(builtin.return_url_prefixes),
                                            enabled=enabled))
        return
    row.enabled = enabled
    await shielded(row.save(update_fields=["enabled"]))


async def remove_app(app_id: str) -> None:
    """Forget a registration (a built-in app comes back as it ships). Existing connections stay."""
    deleted = await shielded(RegisteredApp.filter(app_id=app_id).delete())
    if not deleted:
        raise NotFound("No such registration.")
