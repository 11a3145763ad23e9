"""App Connections on the web: the portal (/appportal/v1/), the app API, live links, admin and account pages.

The app API answers in OctoEverywhere's envelope ``{"Status", "Error", "IsUserError", "Result"}``
with OctoEverywhere's codes as the HTTP status too (400 no token, 601 printer not connected,
603 unknown connection, 604 revoked), because that is what the apps read.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import wraps
from typing import Any
from urllib.parse import quote, urlencode

from quart import Blueprint, Response, redirect, render_template, request, send_file
from quart_schema import hide

from appliance.accounts.auth import csrf_exempt, current_user, require_user
from appliance.apps import connections, live_links, notifications, registry
from appliance.apps.connections import PrinterNotConnected, RevokedConnection, UnknownConnection
from appliance.apps.models import AppConnection
from appliance.apps.portal import (
    PortalRequest,
    check_request,
    read_parameters,
    return_origin_source,
)
from appliance.core.csp import page_policy
from appliance.core.errors import HeraldError, Unauthenticated, headers_of, status_of
from appliance.core.herald import Herald, current_herald
from appliance.core.jsonbody import parse_object, read_json_bytes
from appliance.core.ratelimit import Limit
from appliance.core.secrets import token_hash
from appliance.printers.views import owned_printer, relay_consent

blueprint = Blueprint("apps", __name__)

# Per app token: generous for an app polling info, tight enough to stop a runaway loop.
APP_API_LIMIT = Limit(count=120, per=60.0)
_NO_STORE = {"Cache-Control": "no-store"}


def _herald() -> Herald:
    return current_herald()


def _logo_source(url: str) -> str:
    return return_origin_source(url) if url else ""


# --- the portal -------------------------------------------------------------------------


async def _portal_error(exc: HeraldError):
    """A refused portal request: a clear page, never a redirect to an unchecked returnUrl."""
    html = await render_template("apps/portal_error.html", message=exc.message)
    return html, status_of(exc), {**headers_of(exc), **_NO_STORE}


def _portal_request() -> PortalRequest:
    return read_parameters(request.args.items(multi=True))


@blueprint.get("/appportal/v1/")
@blueprint.get("/appportal/v1")
@hide
async def portal_start():
    """The app's start URL: check the app, log in, pick a printer."""
    herald = _herald()
    try:
        checked = await check_request(herald, _portal_request())
    except HeraldError as exc:
        return await _portal_error(exc)
    user = await current_user()
    if user is None:
        return redirect("/login?" + _next_query("/appportal/v1/?" + checked.request.query()))
    printers = await connections.portal_printers(herald, user)
    portal = checked.request
    preselected = portal.printer_id if any(p["id"] == portal.printer_id for p in printers) else ""
    if not preselected:
        portal = replace(portal, printer_id="")  # another user's printer id is not even echoed back
        linked = [p for p in printers if p["linked"]]
        if len(linked) == 1:
            preselected = linked[0]["id"]
    html = await render_template("apps/portal_printer.html", app=checked.app, logo_url=checked.logo_url,
                                 portal=portal, printers=printers, preselected=preselected,
                                 link_next="/appportal/v1/?" + portal.query(), user=user,
                                 error=request.args.get("error"))
    return html, 200, {**_NO_STORE, "Content-Security-Policy": page_policy(img=_logo_source(checked.logo_url))}


def _next_query(target: str) -> str:
    return urlencode({"next": target})


@blueprint.get("/appportal/v1/nosupporterperks")
@hide
async def portal_no_supporter_perks():
    """Where apps send users on OctoEverywhere's 605; Herald has no supporter perks to lose."""
    html = await render_template("apps/portal_error.html", title="No supporter perks needed",
                                 message="This Herald has no supporter perks: App Connections are always "
                                 "available here. If an app says otherwise, set the printer up in it again.")
    return html, 200


@blueprint.get("/appportal/v1/consent")
@hide
async def portal_consent():
    """What the app will be able to do, for the chosen printer: approve or cancel."""
    herald = _herald()
    try:
        checked = await check_request(herald, _portal_request())
    except HeraldError as exc:
        return await _portal_error(exc)
    user = await require_user()
    printers = await connections.portal_printers(herald, user)
    chosen = next((p for p in printers if p["id"] == request.args.get("printer", "")), None)
    if chosen is None or not chosen["linked"]:
        target = "/appportal/v1/?" + checked.request.query(error="pick")
        return redirect(target)
    html = await render_template("apps/portal_consent.html", app=checked.app, logo_url=checked.logo_url,
                                 portal=checked.request, printer=chosen, user=user, relay=relay_consent(chosen))
    form_source = return_origin_source(checked.request.return_url)
    return html, 200, {**_NO_STORE, "Content-Security-Policy": page_policy(img=_logo_source(checked.logo_url),
                                                                       form=form_source)}


@blueprint.post("/appportal/v1/consent")
@hide
async def portal_decide():
    """Approve: make the connection and redirect to returnUrl with it. Cancel: success=false."""
    herald = _herald()
    form = await request.form
    try:
        checked = await check_request(herald, read_parameters(form.items(multi=True)))
    except HeraldError as exc:
        return await _portal_error(exc)
    user = await require_user()
    if form.get("decision") != "approve":
        return _completion(connections.completion_url(herald, checked.request.return_url, None))
    try:
        made = await connections.create_connection(herald, user, checked.app, form.get("printer", ""),
                                                   checked.request.octoprint_api_key_app_name)
        made = await connections.with_octoprint_api_key(herald, made)
    except HeraldError as exc:
        return await _portal_error(exc)
    return _completion(connections.completion_url(herald, checked.request.return_url, made))


def _completion(url: str) -> Any:
    response = redirect(url)
    response.headers.update(_NO_STORE)
    return response


# --- the app API ------------------------------------------------------------------------

_APP_CODES: tuple[tuple[type[HeraldError], int], ...] = (
    (UnknownConnection, 603),
    (RevokedConnection, 604),
    (PrinterNotConnected, 601),
)


def envelope(result: Any = None, *, status: int = 200, error: str = "", user_error: bool = False,
             headers: dict[str, str] | None = None) -> Response:
    body = {"Status": status, "Error": error, "IsUserError": user_error, "Result": result}
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers.update(headers or {})
    response.headers["Cache-Control"] = "no-store"
    return response


def _error_envelope(exc: HeraldError) -> Response:
    status = next((code for kind, code in _APP_CODES if isinstance(exc, kind)), None)
    if status is None:
        status = 400 if isinstance(exc, Unauthenticated) else status_of(exc)
    user_error = status < 500 or status in (601, 604)
    return envelope(None, status=status, error=exc.message, user_error=user_error, headers=headers_of(exc))


async def _body() -> dict[str, Any]:
    if request.method != "POST":
        return {}
    data = await read_json_bytes()
    return parse_object(data) if data.strip() else {}


AppView = Callable[[Herald, AppConnection, dict[str, Any]], Awaitable[Any]]


def app_api(view: AppView):
    """An app API call: the AppToken (header, or the JSON body on POST), the rate limit, the envelope."""

    @wraps(view)
    async def wrapper(*args, **kwargs):
        herald = _herald()
        try:
            body = await _body()
            token = request.headers.get("AppToken") or body.get("AppToken")
            if token is not None and not isinstance(token, str):
                token = None
            if token:
                await herald.rate_limiter.hit(f"appapi:{token_hash(token.strip())}", APP_API_LIMIT,
                                              "Too many App Connection API calls with this token.")
            connection = await connections.connection_for_token(herald, token)
            result = await view(herald, connection, body)
        except HeraldError as exc:
            return _error_envelope(exc)
        return envelope(result)

    return csrf_exempt(wrapper)


@blueprint.get("/api/appconnection/info")
@hide
@app_api
async def app_info(herald: Herald, connection: AppConnection, body: dict[str, Any]):
    return await connections.connection_info(herald, connection)


@blueprint.post("/api/appconnection/SetNotificationWebhook")
@hide
@app_api
async def app_set_webhook(herald: Herald, connection: AppConnection, body: dict[str, Any]):
    await connections.connection_printer(herald, connection)
    updated = await notifications.set_webhook(herald, connection, body.get("WebhookUrl"),
                                              body.get("InclusiveEventTypesFilter"))
    # Herald's additions: when the registration lapses unless set again, and the Standard
    # Webhooks secret that signs every notification (webhook-signature), for the app to check
    return {"ExpiresAtUtc": updated.webhook_expires_at.isoformat().replace("+00:00", "Z")
            if updated.webhook_expires_at else None,
            "SigningSecret": await notifications.signing_secret(herald, updated)}


@blueprint.post("/api/appconnection/DeleteNotificationWebhook")
@hide
@app_api
async def app_delete_webhook(herald: Herald, connection: AppConnection, body: dict[str, Any]):
    return {"Deleted": await notifications.delete_webhook(connection)}


@blueprint.route("/api/appconnection/TestWebhook", methods=["GET", "POST"])
@hide
@app_api
async def app_test_webhook(herald: Herald, connection: AppConnection, body: dict[str, Any]):
    delivery = await notifications.test_webhook(herald, connection)
    return {"Queued": True, "WebhookId": delivery.webhook_id}


@blueprint.post("/api/live/createfromappconnection")
@hide
@app_api
async def app_create_live_link(herald: Herald, connection: AppConnection, body: dict[str, Any]):
    await connections.connection_printer(herald, connection)
    made = await live_links.create_for_connection(herald, connection, body.get("ExpirationHours"),
                                                  body.get("EndWhenCurrentPrintIsComplete"))
    return {"LiveId": made.link.live_id, "Url": made.url, "ShortUrl": made.short_url,
            "ExpiresAtUtc": made.link.expires_at.isoformat().replace("+00:00", "Z")}


# --- live links -------------------------------------------------------------------------------


@blueprint.get("/live/<token>")
@blueprint.get("/l/<token>")
@hide
async def live_page(token: str):
    herald = _herald()
    link, view = await live_links.open_live_link(herald, token)
    snapshot = await live_links.latest_snapshot(herald, link)
    html = await render_template("apps/live.html", link=link, token=token, watch=live_links.watch_summary(
        view, herald.clock.now()), has_snapshot=snapshot is not None)
    return html, 200, {**_NO_STORE, "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


@blueprint.get("/live/<token>/snapshot.jpg")
@hide
async def live_snapshot(token: str):
    herald = _herald()
    link, _view = await live_links.open_live_link(herald, token)
    path = await live_links.latest_snapshot(herald, link)
    if path is None:
        return Response("No snapshot yet.", status=404, mimetype="text/plain")
    response = await send_file(path, mimetype="image/jpeg")
    response.headers.update(_NO_STORE)
    return response


@blueprint.get("/printers/<printer_id>/live")
@hide
async def printer_live_links(printer_id: str):
    user = await require_user()
    herald = _herald()
    links = await live_links.live_links(herald, user, printer_id)
    printer = await owned_printer(user, printer_id)
    done = request.args.get("done")
    return await render_template("apps/live_links.html", printer=printer, links=links, new=None,
                                 notice="The live link was revoked." if done == "revoked" else None,
                                 error=None, hours=live_links.DEFAULT_HOURS)


@blueprint.post("/printers/<printer_id>/live")
@hide
async def printer_live_create(printer_id: str):
    user = await require_user()
    herald = _herald()
    form = await request.form
    printer = await owned_printer(user, printer_id)
    try:
        made = await live_links.create_live_link(herald, user, printer_id, form.get("hours"),
                                                 bool(form.get("end_when_print_complete")))
    except HeraldError as exc:
        html = await render_template("apps/live_links.html", printer=printer,
                                     links=await live_links.live_links(herald, user, printer_id), new=None,
                                     notice=None, error=exc.message, hours=form.get("hours", ""))
        return html, status_of(exc)
    html = await render_template("apps/live_links.html", printer=printer,
                                 links=await live_links.live_links(herald, user, printer_id), new=made,
                                 notice=None, error=None, hours=live_links.DEFAULT_HOURS)
    return html, 201, _NO_STORE


@blueprint.post("/printers/<printer_id>/live/<live_id>/revoke")
@hide
async def printer_live_revoke(printer_id: str, live_id: str):
    user = await require_user()
    await live_links.revoke_live_link(_herald(), user, printer_id, live_id)
    return redirect(f"/printers/{printer_id}/live?done=revoked")


# --- the user's connections -----------------------------------------------------------------------


@blueprint.post("/account/app-connections/<connection_id>/revoke")
@hide
async def revoke_connection(connection_id: str):
    user = await require_user()
    connection = await connections.revoke_connection(_herald(), user, connection_id)
    return redirect(f"/account/apps?revoked={quote(connection.app_name)}")


# --- admin: registered apps -----------------------------------------------------------------------


async def _admin_page(status: int = 200, **context):
    context.setdefault("notice", None)
    context.setdefault("error", None)
    context.setdefault("form", {})
    apps = await registry.known_apps(_herald())
    html = await render_template("apps/admin_apps.html", section="apps", apps=apps, **context)
    return html, status


_ADMIN_NOTICES = {"registered": "The app was registered.", "removed": "The registration was removed.",
                  "enabled": "The app may use the portal again.", "disabled": "The app can no longer start "
                  "the portal; its existing connections keep working until revoked."}


@blueprint.get("/admin/apps")
@hide
async def admin_apps():
    await require_user(admin=True)
    return await _admin_page(notice=_ADMIN_NOTICES.get(request.args.get("done", "")))


@blueprint.post("/admin/apps")
@hide
async def admin_register_app():
    await require_user(admin=True)
    form = await request.form
    prefixes = form.get("prefixes", "").replace(",", "\n").splitlines()
    try:
        await registry.register_app(_herald(), form.get("app_id", ""), form.get("name", ""),
                                    form.get("logo_url", ""), prefixes)
    except HeraldError as exc:
        return await _admin_page(status_of(exc), error=exc.message, form=dict(form))
    return redirect("/admin/apps?done=registered")


@blueprint.post("/admin/apps/<app_id>/<action>")
@hide
async def admin_app_action(app_id: str, action: str):
    await require_user(admin=True)
    herald = _herald()
    if action == "remove":
        await registry.remove_app(app_id)
        return redirect("/admin/apps?done=removed")
    if action in ("enable", "disable"):
        await registry.set_enabled(herald, app_id, action == "enable")
        return redirect(f"/admin/apps?done={action}d")
    return await _admin_page(404, error="No such action.")
