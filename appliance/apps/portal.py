"""The portal's request: OctoEverywhere's query parameters, read as real apps send them, and checked."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from appliance.apps import registry
from appliance.apps.registry import KnownApp
from appliance.core.errors import Invalid, NotFound
from appliance.core.herald import Herald

# OctoEverywhere's names; matched in any case, anything else is ignored (moonraker=true, formatVersion=1...).
NAMES = ("appId", "returnUrl", "printerId", "appLogoUrl", "octoPrintApiKeyAppName")
_BY_LOWER = {name.lower(): name for name in NAMES}
MAX_RETURN_URL = 2048


@dataclass(frozen=True)
class PortalRequest:
    app_id: str
    return_url: str
    printer_id: str
    app_logo_url: str
    octoprint_api_key_app_name: str

    def query(self, **extra: str) -> str:
        """The portal's own parameters again (for the next step's links and forms)."""
        pairs = [("appId", self.app_id), ("returnUrl", self.return_url), ("printerId", self.printer_id),
                 ("appLogoUrl", self.app_logo_url), ("octoPrintApiKeyAppName", self.octoprint_api_key_app_name)]
        pairs += list(extra.items())
        return urlencode([(k, v) for k, v in pairs if v])

    def fields(self) -> dict[str, str]:
        return {"appId": self.app_id, "returnUrl": self.return_url, "printerId": self.printer_id,
                "appLogoUrl": self.app_logo_url, "octoPrintApiKeyAppName": self.octoprint_api_key_app_name}


def read_parameters(items: Iterable[tuple[str, str]]) -> PortalRequest:
    """The portal's parameters from query (or form) pairs: names in any case, the first value wins."""
    found: dict[str, str] = {}
    for key, value in items:
        name = _BY_LOWER.get(key.lower())
        if name is not None and name not in found:
            found[name] = value.strip()
    return PortalRequest(app_id=found.get("appId", ""), return_url=found.get("returnUrl", ""),
                         printer_id=found.get("printerId", ""), app_logo_url=found.get("appLogoUrl", ""),
                         octoprint_api_key_app_name=found.get("octoPrintApiKeyAppName", ""))


@dataclass(frozen=True)
class CheckedPortal:
    request: PortalRequest
    app: KnownApp
    logo_url: str  # the registered logo, else the app's https appLogoUrl, else none


async def check_request(herald: Herald, portal: PortalRequest) -> CheckedPortal:
    """The app and its returnUrl, or an error the portal shows as a page (never a redirect)."""
    if not portal.app_id:
        raise Invalid("The app that sent you here gave no appId; Herald cannot tell which app wants access.",
                      field="appId", code="app_id_missing")
    app = await registry.find_app(herald, portal.app_id)
    if app is None:
        raise NotFound(f"The app “{portal.app_id[:100]}” is not registered on this Herald. Its admin can "
                       "register it under Admin > Apps.", code="app_unknown")
    if not portal.return_url:
        raise Invalid(f"{app.name} gave no returnUrl, so Herald cannot hand the connection back to it.",
                      field="returnUrl", code="return_url_missing")
    if len(portal.return_url) > MAX_RETURN_URL or not registry.return_url_allowed(app, portal.return_url):
        raise Invalid(f"The returnUrl is not one registered for {app.name}; Herald will not send "
                      "credentials there.", field="returnUrl", code="return_url_not_allowed")
    name = portal.octoprint_api_key_app_name
    if name and not 2 <= len(name) <= 60:
        raise Invalid("octoPrintApiKeyAppName must be 2 to 60 characters long.", field="octoPrintApiKeyAppName",
                      code="invalid_api_key_app_name")
    logo = app.logo_url
    if not logo and portal.app_logo_url and urlsplit(portal.app_logo_url).scheme == "https" \
            and len(portal.app_logo_url) <= 2048:
        logo = portal.app_logo_url
    return CheckedPortal(request=portal, app=app, logo_url=logo)


def return_origin_source(return_url: str) -> str:
    """The CSP source that lets the consent form's redirect reach returnUrl (form-action)."""
    parts = urlsplit(return_url)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}:"
