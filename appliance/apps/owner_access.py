"""The owner's browser through the relay: an origin of its own per printer, entered by a one-time handoff.

OctoPrint runs third-party plugins' scripts in its pages, so relayed pages must never share an
origin with Herald's: a script there must not read Herald's cookies nor act on a Herald session.
Each printer's owner access has its own host under the relay's wildcard domain,
``own-<32 hex>.<relay host>`` (like App Connections' ``app-...`` hosts), and Herald's own pages
are never served there (``owner_routes.owner_host_guard``).

"Open OctoPrint" on the printer page (Herald's session and CSRF token) makes a handoff code:
256-bit random, stored as a SHA-256 hash, valid ``HANDOFF_SECONDS``, usable once, bound to the
owner, the printer and that host. The relayed origin exchanges it for a cookie of its own host
only (no Domain attribute): Herald's session cookie is host-only on Herald's host, so it is
never sent to the relayed origin, and the relay cookie is never sent to Herald's pages. The
relay cookie is signed (HMAC with a key derived from the data directory's key) over the host
label, the access, the owner and the Herald login session that clicked "Open OctoPrint", and
every request checks again that the printer is still the owner's and linked and that login
session still live: logging out of Herald (or a password change ending other sessions) ends
the relayed OctoPrint with it, not 12 hours later.

Why its own mechanism, not an App Connection for the owner: a connection's credentials are
shown to an app once and sent on every request; a browser needs a cookie it gets without
seeing a secret, and the owner's access must end with the owner's account and printer, not
be listed among apps to revoke.

docs/relay.md, "The owner's browser", and docs/deploy.md tell the DNS record and Caddy's
on-demand TLS, whose ``ask`` endpoint (``host_is_live``) answers only for hosts of live
connections and owner accesses.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from tortoise.expressions import Subquery

from appliance.accounts.auth import ANON_CSRF_COOKIE, SESSION_COOKIE
from appliance.accounts.models import LoginSession, User
from appliance.apps.connections import relay_base, relay_host_uses_path
from appliance.apps.models import AppConnection, OwnerRelayAccess, RelayHandoff
from appliance.apps.relay_use import OWNER_ACCESS_PREFIX
from appliance.core.db import shielded
from appliance.core.errors import NotAllowed, NotFound, Unauthenticated, Unavailable
from appliance.core.herald import Herald
from appliance.core.secrets import new_token, token_hash
from appliance.printers.models import Printer
from appliance.printers.views import owned_printer, printer_view, relay_consent

OWNER_LABEL_PREFIX = "own-"
APP_LABEL_PREFIX = "app-"
HANDOFF_PREFIX = "hrh_"
HANDOFF_SECONDS = 60  # from the click to the new tab's first request; a lost code costs one more click
HANDOFF_PATH = "/_herald/handoff"
RELAY_COOKIE = "herald_relay"
RELAY_COOKIE_HOURS = 12  # the owner opens OctoPrint again from Herald after this


class RelayNotIsolated(Unavailable):
    """The relay has no origin apart from Herald's pages here (no wildcard domain), so it is not offered."""

    default_code = "relay_not_isolated"


class HandoffRefused(Unauthenticated):
    """The handoff code is unknown, used, expired, or for another host."""

    default_code = "relay_handoff_refused"


# --- the relayed origin -----------------------------------------------------------------------


def _relay_host(herald: Herald) -> str:
    return (urlsplit(relay_base(herald.settings)).hostname or "").lower()


def label_under_relay(herald: Herald, host: str, prefix: str) -> str | None:
    """The label (``own-...`` / ``app-...``) a Host header names directly under the relay host, or None."""
    relay_host = _relay_host(herald)
    if not relay_host or host.startswith("["):
        return None
    name = host.rsplit(":", 1)[0].lower().rstrip(".")
    if not name.endswith("." + relay_host):
        return None
    label = name[: -len(relay_host) - 1]
    if label.startswith(prefix) and "." not in label and len(label) <= 40:
        return label
    return None


def _netloc(scheme: str, host: str) -> str:
    """host[:port] in lower case, without the scheme's default port."""
    host = host.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    return host[: -len(default)] if default and host.endswith(default) else host


def separate_origin(herald: Herald) -> str | None:
    """HERALD_RELAY_OWNER_ORIGIN (``scheme://host[:port]``), the owner's relayed origin without a wildcard domain.

    It must be another origin than Herald's own: the same one would serve OctoPrint's pages where
    Herald's are, which is what this whole arrangement prevents.
    """
    value = (herald.settings.relay_owner_origin or "").strip().rstrip("/")
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
        raise RelayNotIsolated("HERALD_RELAY_OWNER_ORIGIN must be an origin such as https://herald.example.com:8443.")
    own = urlsplit(herald.settings.base_url)
    origin = f"{parts.scheme}://{_netloc(parts.scheme, parts.netloc)}"
    if origin == f"{own.scheme}://{_netloc(own.scheme, own.netloc)}":
        raise RelayNotIsolated("HERALD_RELAY_OWNER_ORIGIN must differ from Herald's own address (another port "
                               "or host), or OctoPrint's pages would share an origin with Herald's.")
    return origin


def owner_entry(herald: Herald, label: str) -> str:
    """Where the owner access's relayed OctoPrint starts, ending in ``/``.

    With a wildcard domain, ``<scheme>://own-<hex>.<relay host>[:port]/``: an origin per printer.
    Without one, ``HERALD_RELAY_OWNER_ORIGIN/own/own-<hex>/``: one origin apart from Herald's for all
    printers, each under its own path (and its own cookie path).
    """
    if not relay_host_uses_path(herald.settings):
        return _under_relay_host(herald, label)
    origin = separate_origin(herald)
    if origin is None:
        raise RelayNotIsolated(
            "Opening OctoPrint needs an address of its own, apart from Herald's pages: set HERALD_RELAY_URL to a "
            "name with a wildcard DNS record, or HERALD_RELAY_OWNER_ORIGIN to another port "
            "(docs/deploy.md, \"Remote access\").")
    return f"{origin}/own/{label}/"


def _under_relay_host(herald: Herald, label: str) -> str:
    parts = urlsplit(relay_base(herald.settings))
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{label}.{parts.hostname}{port}/"


def entry_form_source(herald: Herald) -> str | None:
    """The CSP source the printer page's form-action needs for "Open OctoPrint", or None where it is refused.

    The button's form posts to Herald, whose 303 sends the browser to the relayed origin; browsers hold
    a form's redirects to the page's form-action too, so without this source the click goes nowhere.
    With a wildcard domain it is every host under the relay host (``scheme://*.<relay host>[:port]``):
    the printer's own label may be made only by the click, after the page was served, and every host
    there is answered by Herald's relay alone. Without one, the separate origin.
    """
    if not relay_host_uses_path(herald.settings):
        return _under_relay_host(herald, "*").rstrip("/")
    try:
        return separate_origin(herald)
    except RelayNotIsolated:
        return None


@dataclass(frozen=True)
class RelayedPlace:
    """Where a request on a relayed origin belongs: the owner access's label and its base path."""

    label: str | None  # None: the separate origin, but no owner access's path
    base_path: str  # "/" on an own- host, "/own/<label>/" on the separate origin

    @property
    def handoff_path(self) -> str:
        return self.base_path + HANDOFF_PATH.lstrip("/")


_OWN_PATH = re.compile(r"^/own/(own-[0-9a-f]{32})(?:/|$)")


def relayed_place(herald: Herald, host: str, path: str) -> RelayedPlace | None:
    """The owner's relayed place a request is for, or None for Herald's own pages (and App Connections')."""
    label = label_under_relay(herald, host, OWNER_LABEL_PREFIX)
    if label is not None:
        return RelayedPlace(label=label, base_path="/")
    try:
        origin = separate_origin(herald)
    except RelayNotIsolated:
        return None
    if origin is None:
        return None
    scheme = origin.split("://", 1)[0]
    if _netloc(scheme, host) != origin.split("://", 1)[1]:
        return None
    found = _OWN_PATH.match(path)
    if found is None:
        return RelayedPlace(label=None, base_path="/")
    return RelayedPlace(label=found.group(1), base_path=f"/own/{found.group(1)}/")


def relay_cookie_secure(herald: Herald, label: str) -> bool:
    return owner_entry(herald, label).startswith("https://")


async def host_is_live(herald: Herald, domain: str) -> bool:
    """Caddy's on-demand TLS ``ask``: is this host one Herald relays for (a live connection or owner access)?"""
    label = label_under_relay(herald, domain, APP_LABEL_PREFIX)
    if label is not None:
        return await AppConnection.filter(host_label=label, revoked_at=None, printer_id__not_isnull=True).exists()
    label = label_under_relay(herald, domain, OWNER_LABEL_PREFIX)
    if label is not None:
        access = await OwnerRelayAccess.get_or_none(host_label=label)
        return access is not None and await Printer.filter(
            id=access.printer_id, owner_id=access.user_id, key_hash__not_isnull=True).exists()
    return False


# --- the handoff ------------------------------------------------------------------------------


async def _access_for(herald: Herald, user: User, printer: Printer) -> OwnerRelayAccess:
    found = await OwnerRelayAccess.get_or_none(user_id=user.id, printer_id=printer.id)
    if found is not None:
        return found
    made, _created = await shielded(OwnerRelayAccess.get_or_create(
        user_id=user.id, printer_id=printer.id,
        defaults={"id": OWNER_ACCESS_PREFIX + secrets.token_hex(16),
                  "host_label": OWNER_LABEL_PREFIX + secrets.token_hex(16), "created_at": herald.clock.now()}))
    return made


async def start_handoff(herald: Herald, user: User, printer_id: str, session: LoginSession | None) -> str:
    """The URL that takes the owner to the printer's relayed OctoPrint, good once for HANDOFF_SECONDS;
    the relayed session it opens lasts as long as the login ``session`` that asked for it."""
    if session is None or session.user_id != user.id:
        raise Unauthenticated("Log in to Herald to open OctoPrint.")
    printer = await owned_printer(user, printer_id)
    if printer.key_hash is None:
        raise NotFound("This printer is not linked: link it from the Herald plugin first.", code="printer_unlinked")
    if not relay_consent(printer_view(herald, printer))["enabled"]:
        raise NotAllowed(f"Remote access is off for {printer.name}: turn it on in OctoPrint, Settings → Herald → "
                         "Remote access.", code="relay_off")
    access = await _access_for(herald, user, printer)
    entry = owner_entry(herald, access.host_label)
    code = new_token(HANDOFF_PREFIX)
    now = herald.clock.now()
    await shielded(RelayHandoff.create(code_hash=token_hash(code), access_id=access.id, user_id=user.id,
                                       session_id=session.id, created_at=now,
                                       expires_at=now + timedelta(seconds=HANDOFF_SECONDS)))
    await shielded(RelayHandoff.filter(expires_at__lt=now - timedelta(hours=1)).delete())  # old codes go
    return f"{entry}{HANDOFF_PATH.lstrip('/')}?code={code}"


@dataclass(frozen=True)
class RelayCookie:
    value: str
    max_age: int


def _signature(herald: Herald, label: str, access_id: str, user_id: int, session_id: int, expires: int) -> str:
    key = herald.secret_box.derive_key("relay-owner-cookie")
    message = f"{label}|{access_id}|{user_id}|{session_id}|{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


async def redeem_handoff(herald: Herald, label: str, code: str) -> RelayCookie:
    """Exchange a handoff code, on the host it was made for, for that host's relay cookie (once)."""
    refused = HandoffRefused("This link to OctoPrint has expired or was already used: open OctoPrint again from "
                             "the printer's page in Herald.")
    if not code.startswith(HANDOFF_PREFIX) or len(code) > 100:
        raise refused
    now = herald.clock.now()
    digest = token_hash(code)
    # One statement claims it: of two requests with one code (two tabs, two processes), one wins.
    claimed = await shielded(RelayHandoff.filter(code_hash=digest, used_at=None, expires_at__gt=now)
                             .update(used_at=now))
    if not claimed:
        raise refused
    handoff = await RelayHandoff.get(code_hash=digest)
    access = await OwnerRelayAccess.get_or_none(id=handoff.access_id)
    if access is None or access.host_label != label or access.user_id != handoff.user_id:
        raise refused
    await _live_access(access)
    session = await _live_session(herald, handoff.session_id, access.user_id)
    if session is None:
        raise refused
    # never longer than the login session it came from
    expires = int(min(now.timestamp() + RELAY_COOKIE_HOURS * 3600, session.expires_at.timestamp()))
    signature = _signature(herald, label, access.id, access.user_id, session.id, expires)
    value = f"{access.id}.{access.user_id}.{session.id}.{expires}.{signature}"
    return RelayCookie(value=value, max_age=max(1, expires - int(now.timestamp())))


async def _live_session(herald: Herald, session_id: int | None, user_id: int) -> LoginSession | None:
    if session_id is None:
        return None
    return await LoginSession.get_or_none(id=session_id, user_id=user_id, expires_at__gt=herald.clock.now())


async def _live_access(access: OwnerRelayAccess) -> Printer:
    printer = await Printer.get_or_none(id=access.printer_id, owner_id=access.user_id)
    if printer is None or printer.key_hash is None:
        raise HandoffRefused("This printer is no longer linked to your Herald account.")
    return printer


async def access_for_cookie(herald: Herald, label: str, cookie: str) -> OwnerRelayAccess:
    """The owner access a relay cookie on host ``label`` proves; HandoffRefused otherwise."""
    refused = HandoffRefused("Open OctoPrint from the printer's page in Herald: this address only works "
                             "after that.")
    parts = cookie.split(".")
    if len(parts) != 5 or not all(part.isdigit() and len(part) <= 20 for part in parts[1:4]):
        raise refused
    access_id, user_id, session_id, expires, signature = (parts[0], int(parts[1]), int(parts[2]), int(parts[3]),
                                                          parts[4])
    if not hmac.compare_digest(signature, _signature(herald, label, access_id, user_id, session_id, expires)):
        raise refused
    if expires <= herald.clock.now().timestamp():
        raise refused
    # Every relayed request (OctoPrint's UI loads dozens of assets) comes here: one query when all
    # holds (the access, its printer still the owner's and linked, the login session live); the
    # separate reads below only to say which of them failed.
    live_session = LoginSession.filter(id=session_id, user_id=user_id,
                                       expires_at__gt=herald.clock.now()).values("user_id")
    access = await OwnerRelayAccess.filter(
        id=access_id, user_id=user_id, host_label=label, printer__owner_id=user_id,
        printer__key_hash__not_isnull=True, user_id__in=Subquery(live_session)).first()
    if access is not None:
        return access
    access = await OwnerRelayAccess.get_or_none(id=access_id, user_id=user_id, host_label=label)
    if access is None:
        raise refused
    await _live_access(access)
    if await _live_session(herald, session_id, user_id) is None:
        raise HandoffRefused("You logged out of Herald, or your Herald session ended: open OctoPrint again from "
                             "the printer's page in Herald.")
    raise refused  # every part held on its own: changed between the reads; the next request decides


async def list_owner_accesses(user: User) -> list[OwnerRelayAccess]:
    """The user's own relayed accesses (one per printer opened), with their printers, last used first."""
    return await OwnerRelayAccess.filter(user_id=user.id).prefetch_related("printer").order_by("-last_used_at")


# --- what the relayed origin answers ----------------------------------------------------------

_HERALD_COOKIES = (SESSION_COOKIE, ANON_CSRF_COOKIE, RELAY_COOKIE)


def forwardable_cookies(header: str) -> str:
    """A Cookie header without Herald's own cookies, for the request forwarded to OctoPrint.

    OctoPrint's server-side plugins see what is forwarded: neither the relay cookie nor (on a separate
    origin, which shares cookies with Herald's host, as cookies ignore ports) Herald's session may reach them.
    """
    kept = []
    for part in header.split(";"):
        name = part.split("=", 1)[0].strip()
        if name and name not in _HERALD_COOKIES:
            kept.append(part.strip())
    return "; ".join(kept)
