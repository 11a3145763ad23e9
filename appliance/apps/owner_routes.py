"""The owner's way to OctoPrint through the relay: "Open OctoPrint", the relayed origin's guard, TLS's ask.

Herald's pages and the relayed origin never mix: ``owner_host_guard`` (a before_request hook,
registered by create_app) answers every request to an ``own-...`` host itself, so no Herald page,
cookie or form is ever served there; Herald's own host never reads the relay cookie.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, redirect, render_template, request
from quart_schema import hide

from appliance.accounts.auth import load_session, require_user
from appliance.apps import owner_access
from appliance.apps.models import OwnerRelayAccess
from appliance.apps.owner_access import HandoffRefused, RelayedPlace
from appliance.core.errors import HeraldError, headers_of, status_of
from appliance.core.herald import Herald, current_herald
from appliance.printers.models import Printer
from appliance.printers.views import printer_view, relay_consent

blueprint = Blueprint("owner_relay", __name__)

_NO_STORE = {"Cache-Control": "no-store"}
# The relayed origin's own pages (refusals, "not available") load nothing and go nowhere.
_RELAY_PAGE_HEADERS = {**_NO_STORE, "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex",
                       "Content-Security-Policy": "default-src 'none'; base-uri 'none'; form-action 'none'; "
                                                  "frame-ancestors 'none'"}


def _herald() -> Herald:
    return current_herald()


@blueprint.post("/printers/<printer_id>/open-octoprint")
@hide
async def open_octoprint(printer_id: str):
    """From the printer page (session + CSRF): a one-time code to the printer's relayed origin."""
    user = await require_user()
    url = await owner_access.start_handoff(_herald(), user, printer_id, await load_session())
    response = redirect(url, 303)
    response.headers.update({**_NO_STORE, "Referrer-Policy": "no-referrer"})
    return response


@blueprint.get("/_herald/tls-ask")
@hide
async def tls_ask():
    """Caddy's on-demand TLS ``ask``: 200 only for the host of a live connection or owner access."""
    domain = request.args.get("domain", "").strip()
    if not domain or len(domain) > 253:
        return Response("Send the host name as ?domain=.", status=400, mimetype="text/plain")
    if await owner_access.host_is_live(_herald(), domain):
        return Response("ok", status=200, mimetype="text/plain", headers=_NO_STORE)
    return Response("Herald relays for no such host.", status=404, mimetype="text/plain", headers=_NO_STORE)


async def _relay_page(status: int, title: str, message: str, headers: dict[str, str] | None = None) -> Response:
    html = await render_template("apps/relay_page.html", title=title, message=message,
                                 herald_url=_herald().settings.base_url + "/")
    return Response(html, status=status, mimetype="text/html", headers={**_RELAY_PAGE_HEADERS, **(headers or {})})


async def _handoff(place: RelayedPlace, label: str) -> Any:
    herald = _herald()
    try:
        cookie = await owner_access.redeem_handoff(herald, label, request.args.get("code", ""))
    except HeraldError as exc:
        return await _relay_page(status_of(exc), "Open OctoPrint from Herald", exc.message)
    response = redirect(place.base_path, 303)
    response.headers.update({**_NO_STORE, "Referrer-Policy": "no-referrer"})
    # No Domain attribute: the cookie belongs to this host alone, never to Herald's or a sibling's; on the
    # separate origin, to this printer's path alone.
    response.set_cookie(owner_access.RELAY_COOKIE, cookie.value, max_age=cookie.max_age, httponly=True,
                        samesite="Lax", secure=owner_access.relay_cookie_secure(herald, label),
                        path=place.base_path)
    return response


async def relayed_answer(herald: Herald, access: OwnerRelayAccess) -> Response:
    """What the owner's relayed origin answers a proven owner when the relay cannot forward: why not."""
    printer = await Printer.get(id=access.printer_id)
    view = printer_view(herald, printer)
    if not relay_consent(view)["enabled"]:
        return await _relay_page(503, "Remote access is off", f"Remote access is off for {printer.name}: turn it "
                                 "on in OctoPrint, Settings → Herald → Remote access.")
    if not view["online"]:
        return await _relay_page(502, f"{printer.name} is offline", f"{printer.name} is not connected to Herald "
                                 "right now, so its OctoPrint cannot be reached. Try again when it is back.")
    # A proven owner whose printer's tunnel is up never gets here: the relay's gateway
    # (relay/gateway.py) forwards the request to OctoPrint before Quart sees it.
    return await _relay_page(502, "Not connected yet", f"{printer.name}'s Herald plugin has no relay connection "
                             "to Herald right now. It connects by itself a few seconds after Remote access is "
                             "turned on; reload this page in a moment.")


async def owner_host_guard():
    """before_request (create_app): requests to an owner's relayed host never reach Herald's pages."""
    herald = _herald()
    place = owner_access.relayed_place(herald, request.host or "", request.path)
    if place is None:
        return None
    label = place.label
    if label is None:
        return await _relay_page(404, "Nothing here", "This address only serves OctoPrint relayed by Herald: open "
                                 "it from the printer's page in Herald.")
    if request.path == place.handoff_path:
        return await _handoff(place, label)
    try:
        access = await owner_access.access_for_cookie(herald, label, request.cookies.get(owner_access.RELAY_COOKIE, ""))
    except HandoffRefused as exc:
        return await _relay_page(401, "Open OctoPrint from Herald", exc.message, headers_of(exc))
    return await relayed_answer(herald, access)
