"""Printer pages: approve a link request (/link), add, rename, re-key and remove printers.

The dashboard at / belongs to the home blueprint; these pages are the printer
management around it.
"""

from __future__ import annotations

from quart import Blueprint, current_app, redirect, render_template, request
from quart_schema import hide

from appliance.auth import require_user
from appliance.errors import APIError
from appliance.netaddr import client_address
from appliance.services import linking, printers
from appliance.services.dashboard import user_zone
from appliance.services.history import recent_jobs
from appliance.services.samples import chart_for

blueprint = Blueprint("printers", __name__)

_NO_STORE = {"Cache-Control": "no-store"}


def _herald():
    return current_app.extensions["herald"]


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
    if not code:
        return await _page("printers/link.html", user_code="", error=None)
    pending = await linking.find_pending(_herald(), user, _address(), code)
    if pending is None:
        return await _page("printers/link.html", 400, user_code=code,
                           error="This code is unknown or expired; check the code the printer shows.")
    return await _confirm_page(user, pending)


async def _confirm_page(user, pending):
    unlinked = [p for p in await printers.printer_views(_herald(), user) if not p["linked"]]
    return await _page("printers/link_confirm.html", request_=pending,
                       user_code=linking.format_user_code(pending.user_code), unlinked=unlinked)


@blueprint.post("/link")
@hide
async def link_lookup():
    user = await require_user()
    form = await request.form
    code = form.get("user_code", "")
    pending = await linking.find_pending(_herald(), user, _address(), code)
    if pending is None:
        return await _page("printers/link.html", 400, user_code=code,
                           error="This code is unknown or expired; check the code the printer shows.")
    return await _confirm_page(user, pending)


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
    except APIError as exc:
        if exc.status == 429:
            raise
        return await _page("printers/link.html", exc.status, user_code=form.get("user_code", ""),
                           error=exc.message)
    name = await linking.linked_name(decided) if approve else decided.printer_name
    return await _page("printers/link_done.html", approved=approve, name=name, asked_as=decided.printer_name)


# --- managing printers -----------------------------------------------------------------


_LIST_NOTICES = {"removed": "The printer was removed."}
_DETAIL_NOTICES = {"renamed": "The printer was renamed."}


@blueprint.get("/printers")
@hide
async def printer_list():
    user = await require_user()
    views = await printers.printer_views(_herald(), user)
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
        created = await printers.create_printer(_herald(), user, name)
    except APIError as exc:
        return await _page("printers/new.html", 400, name=name, error=exc.message)
    return await _page("printers/key.html", headers=_NO_STORE, printer=created.printer,
                       key=created.key, new=True)


async def _detail_page(user, printer, status: int = 200, **context):
    herald = _herald()
    context.setdefault("error", None)
    context.setdefault("notice", None)
    return await _page("printers/detail.html", status, printer=printer,
                       view=printers.printer_view(herald, printer), jobs=await recent_jobs(printer.id),
                       chart=await chart_for(herald, printer.id, user_zone(user.time_zone)), **context)


@blueprint.get("/printers/<printer_id>")
@hide
async def printer_detail(printer_id: str):
    user = await require_user()
    printer = await printers.owned_printer(user, printer_id)
    return await _detail_page(user, printer, notice=_DETAIL_NOTICES.get(request.args.get("done", "")))


@blueprint.post("/printers/<printer_id>/rename")
@hide
async def printer_rename(printer_id: str):
    user = await require_user()
    form = await request.form
    try:
        await printers.rename_printer(_herald(), user, printer_id, form.get("name", ""))
    except APIError as exc:
        if exc.status == 404:
            raise
        printer = await printers.owned_printer(user, printer_id)
        return await _detail_page(user, printer, 400, error=exc.message)
    return redirect(f"/printers/{printer_id}?done=renamed")


@blueprint.get("/printers/<printer_id>/rotate")
@hide
async def printer_rotate_form(printer_id: str):
    """Ask first: a new key stops the working one at once."""
    user = await require_user()
    printer = await printers.owned_printer(user, printer_id)
    return await _page("printers/rotate.html", printer=printer, view=printers.printer_view(_herald(), printer))


@blueprint.post("/printers/<printer_id>/rotate")
@hide
async def printer_rotate(printer_id: str):
    user = await require_user()
    rotated = await printers.rotate_key(_herald(), user, printer_id)
    return await _page("printers/key.html", headers=_NO_STORE, printer=rotated.printer,
                       key=rotated.key, new=False)


@blueprint.get("/printers/<printer_id>/remove")
@hide
async def printer_remove_form(printer_id: str):
    user = await require_user()
    printer = await printers.owned_printer(user, printer_id)
    return await _page("printers/remove.html", printer=printer)


@blueprint.post("/printers/<printer_id>/remove")
@hide
async def printer_remove(printer_id: str):
    user = await require_user()
    await printers.remove_printer(_herald(), user, printer_id)
    return redirect("/printers?done=removed")


def init_app(app) -> None:
    from appliance.services.maintenance import init_periodic_jobs

    init_periodic_jobs(app)
