"""Printer pages: approve a link request (/link), add, rename, re-key and remove printers.

The dashboard at / belongs to the home blueprint; these pages are the printer
management around it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from quart import Blueprint, Response, redirect, render_template, request
from quart_schema import hide

from appliance.accounts.auth import require_user
from appliance.accounts.routes import safe_next
from appliance.core.csp import page_policy
from appliance.core.errors import HeraldError, NotFound, RateLimited, status_of
from appliance.core.herald import Herald, current_herald
from appliance.core.netaddr import client_address
from appliance.core.times import user_zone
from appliance.mqtt.publishing import publish_choice
from appliance.printers import linking
from appliance.printers.chart import chart_for
from appliance.printers.jobs import recent_jobs
from appliance.printers.manage import create_printer, remove_printer, rename_printer, rotate_key
from appliance.printers.pictures import pictures_of, read_picture
from appliance.printers.plugin_archive import PluginArchive
from appliance.printers.plugin_compat import plugin_behind
from appliance.printers.views import owned_printer, printer_view, printer_views, relay_consent
from appliance.relay.commands import relay_connected

blueprint = Blueprint("printers", __name__)

_NO_STORE = {"Cache-Control": "no-store"}


def _herald() -> Herald:
    return current_herald()


def _address() -> str:
    return client_address(request, _herald().settings.trusted_proxies)


async def _page(template: str, status: int = 200, headers: dict | None = None, **context):
    return await render_template(template, **context), status, headers or {}


# --- linking by code -------------------------------------------------------------------


@blueprint.get("/link")
@hide
async def link_form():
    user = await require_user()
    code = request.args.get("user_code", "")
    next_url = _next(request.args.get("next"))
    if not code:
        return await _page("printers/link.html", user_code="", error=None, next=next_url)
    pending = await linking.find_pending(_herald(), user, _address(), code)
    if pending is None:
        return await _page("printers/link.html", 400, user_code=code, next=next_url,
                           error="This code is unknown or expired; check the code the printer shows.")
    return await _confirm_page(user, pending, next_url)


def _next(target: str | None) -> str:
    """Where to go on after linking (the App Connection portal sends users here); "" for nowhere."""
    checked = safe_next(target)
    return "" if checked == "/" else checked


async def _confirm_page(user, pending, next_url: str = ""):
    unlinked = [p for p in await printer_views(_herald(), user) if not p["linked"]]
    return await _page("printers/link_confirm.html", request_=pending, next=next_url,
                       user_code=linking.format_user_code(pending.user_code), unlinked=unlinked)


@blueprint.post("/link")
@hide
async def link_lookup():
    user = await require_user()
    form = await request.form
    code = form.get("user_code", "")
    next_url = _next(form.get("next"))
    pending = await linking.find_pending(_herald(), user, _address(), code)
    if pending is None:
        return await _page("printers/link.html", 400, user_code=code, next=next_url,
                           error="This code is unknown or expired; check the code the printer shows.")
    return await _confirm_page(user, pending, next_url)


@blueprint.post("/link/decide")
@hide
async def link_decide():
    user = await require_user()
    form = await request.form
    approve = form.get("decision") == "approve"
    relink = form.get("relink") or None
    try:
        decided = await linking.decide_link(_herald(), user, _address(), form.get("user_code", ""),
                                            approve=approve, relink_printer_id=relink)
    except HeraldError as exc:
        if isinstance(exc, RateLimited):
            raise
        return await _page("printers/link.html", status_of(exc), user_code=form.get("user_code", ""),
                           error=exc.message, next=_next(form.get("next")))
    name = await linking.linked_name(decided) if approve else decided.printer_name
    return await _page("printers/link_done.html", approved=approve, name=name, asked_as=decided.printer_name,
                       next=_next(form.get("next")))


# --- managing printers -----------------------------------------------------------------


_LIST_NOTICES = {"removed": "The printer was removed."}
_DETAIL_NOTICES = {"renamed": "The printer was renamed.",
                   "home-assistant-on": "Home Assistant gets this printer (when Herald has an MQTT broker).",
                   "home-assistant-off": "This printer is no longer published to Home Assistant."}


@blueprint.get("/printers")
@hide
async def printer_list():
    user = await require_user()
    views = await printer_views(_herald(), user)
    return await _page("printers/list.html", printers=views,
                       notice=_LIST_NOTICES.get(request.args.get("done", "")))


@blueprint.get("/printers/new")
@hide
async def printer_new_form():
    await require_user()
    return await _page("printers/new.html", name="", error=None)


@blueprint.post("/printers/new")
@hide
async def printer_create():
    user = await require_user()
    form = await request.form
    name = form.get("name", "")
    try:
        created = await create_printer(_herald(), user, name)
    except HeraldError as exc:
        return await _page("printers/new.html", 400, name=name, error=exc.message)
    return await _page("printers/key.html", headers=_NO_STORE, printer=created.printer,
                       key=created.key, new=True)


@dataclass(frozen=True)
class OpenOctoPrintTarget:
    """Where the printer page's "Open OctoPrint" leads, as a CSP source for the page's form-action.

    The relayed origins are the apps area's (apps/owner_access.entry_form_source); create_app provides
    this part, so the printers area imports nothing of that area.
    """

    form_source: Callable[[Herald], str | None]


def _detail_headers(herald: Herald, relay: dict[str, bool | None]) -> dict[str, str]:
    """The page's own CSP where it offers "Open OctoPrint" (the relay is on); Herald's usual one elsewhere."""
    target = herald.part_or_none(OpenOctoPrintTarget) if relay["enabled"] else None
    source = target.form_source(herald) if target else None
    return {"Content-Security-Policy": page_policy(form=source)} if source else {}


async def _detail_page(user, printer, status: int = 200, **context):
    herald = _herald()
    context.setdefault("error", None)
    context.setdefault("notice", None)
    carried = await herald.part(PluginArchive).version()
    view = printer_view(herald, printer)
    job = (view.get("status") or {}).get("job") or {}
    pictures = pictures_of(herald, printer.id, job.get("file"))
    plugin = {"installed": printer.plugin_version, "carried": carried,
              "behind": plugin_behind(printer.plugin_version, carried)}
    relay: dict[str, bool | None] = {**relay_consent(view), "tunnel": None}
    if relay["enabled"] and view["online"]:
        # the consent is what the plugin last said; whether its tunnel is up right now is the relay's
        relay["tunnel"] = await relay_connected(herald, printer.id)
    return await _page("printers/detail.html", status, _detail_headers(herald, relay), printer=printer,
                       plugin=plugin, pictures=pictures, view=view, relay=relay, jobs=await recent_jobs(printer.id),
                       home_assistant=await publish_choice(printer),
                       chart=await chart_for(herald, printer.id, user_zone(user.time_zone)), **context)


@blueprint.get("/printers/<printer_id>")
@hide
async def printer_detail(printer_id: str):
    user = await require_user()
    printer = await owned_printer(user, printer_id)
    return await _detail_page(user, printer, notice=_DETAIL_NOTICES.get(request.args.get("done", "")))


@blueprint.get("/printers/<printer_id>/pictures/<kind>")
@hide
async def printer_picture(printer_id: str, kind: str):
    user = await require_user()
    printer = await owned_printer(user, printer_id)
    data, media_type = read_picture(_herald(), printer.id, kind)
    # Private to the owner; the URL changes with each picture (?v=), so caching it is safe.
    return Response(data, content_type=media_type, headers={"Cache-Control": "private, max-age=86400",
                                                             "X-Content-Type-Options": "nosniff"})


@blueprint.post("/printers/<printer_id>/rename")
@hide
async def printer_rename(printer_id: str):
    user = await require_user()
    form = await request.form
    try:
        await rename_printer(_herald(), user, printer_id, form.get("name", ""), form.get("spoken_name"),
                             set_spoken_name="spoken_name" in form)
    except HeraldError as exc:
        if isinstance(exc, NotFound):
            raise
        printer = await owned_printer(user, printer_id)
        return await _detail_page(user, printer, 400, error=exc.message)
    return redirect(f"/printers/{printer_id}?done=renamed")


@blueprint.get("/printers/<printer_id>/rotate")
@hide
async def printer_rotate_form(printer_id: str):
    """Ask first: a new key stops the working one at once."""
    user = await require_user()
    printer = await owned_printer(user, printer_id)
    return await _page("printers/rotate.html", printer=printer, view=printer_view(_herald(), printer))


@blueprint.post("/printers/<printer_id>/rotate")
@hide
async def printer_rotate(printer_id: str):
    user = await require_user()
    rotated = await rotate_key(_herald(), user, printer_id)
    return await _page("printers/key.html", headers=_NO_STORE, printer=rotated.printer,
                       key=rotated.key, new=False)


@blueprint.get("/printers/<printer_id>/remove")
@hide
async def printer_remove_form(printer_id: str):
    user = await require_user()
    printer = await owned_printer(user, printer_id)
    return await _page("printers/remove.html", printer=printer)


@blueprint.post("/printers/<printer_id>/remove")
@hide
async def printer_remove(printer_id: str):
    user = await require_user()
    await remove_printer(_herald(), user, printer_id)
    return redirect("/printers?done=removed")


