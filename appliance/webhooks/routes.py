"""Webhooks: JSON API under /api/v1/webhooks and the web UI pages under /webhooks."""

from __future__ import annotations

import json
import logging
from typing import Any

from quart import Blueprint, redirect, render_template, request

from appliance.accounts.auth import (
    accepts_bearer,
    bearer_credential,
    csrf_exempt,
    current_user,
    require_bearer_or_session,
    require_user,
)
from appliance.core.errors import HeraldError, Invalid, Unauthenticated, Unprocessable
from appliance.core.herald import Herald, current_herald
from appliance.core.jsonbody import read_object
from appliance.printers.keys import printer_for_key
from appliance.printers.views import printer_list
from appliance.webhooks import enqueue as webhook_enqueue
from appliance.webhooks import octoprint_import
from appliance.webhooks import presets as webhook_presets
from appliance.webhooks import targets as service
from appliance.webhooks.delivery import DeliveryWorker

log = logging.getLogger("appliance.webhooks")
blueprint = Blueprint("webhooks", __name__)
SCOPE = "webhooks"  # a hat_ token with this scope may manage the user's webhooks


def _herald() -> Herald:
    return current_herald()


def _worker() -> DeliveryWorker:
    return current_herald().part(DeliveryWorker)


@blueprint.app_context_processor
async def _notices() -> dict[str, Any]:
    async def webhook_notices():
        user = await current_user()
        return await service.notices(user) if user else []

    return {"webhook_notices": webhook_notices}


async def _json_body() -> dict[str, Any]:
    return await read_object()  # the JSON API's one rule for bodies (appliance.core.jsonbody)


# --- JSON API ---------------------------------------------------------------------------


@blueprint.get("/api/v1/webhooks")
@accepts_bearer
async def api_list():
    user = await require_bearer_or_session(SCOPE)
    targets = await service.list_targets(user)
    return {"targets": [service.target_json(_herald(), t) for t in targets]}


@blueprint.get("/api/v1/webhooks/presets")
@accepts_bearer
async def api_presets():
    await require_bearer_or_session(SCOPE)
    return {"presets": webhook_presets.PRESETS,
            "event_types": {t: topic for t, (topic, _msg) in service.EVENT_TOPICS.items()}}


@blueprint.post("/api/v1/webhooks")
@accepts_bearer
async def api_create():
    user = await require_bearer_or_session(SCOPE)
    data = await _json_body()
    preset = data.get("preset")
    if preset:
        if preset not in webhook_presets.PRESETS:
            raise Unprocessable(f"preset: no preset named {preset}", extra={"details": [{"field": "preset", "problem": "unknown preset"}]}, code="invalid_target")
        base = {k: v for k, v in webhook_presets.PRESETS[preset].items() if k not in ("label", "help")}
        data = {**base, **data}
    target = await service.create_target(_herald(), user, data)
    return service.target_json(_herald(), target), 201


@blueprint.get("/api/v1/webhooks/<digits:target_id>")
@accepts_bearer
async def api_get(target_id: str):
    user = await require_bearer_or_session(SCOPE)
    return service.target_json(_herald(), await service.get_target(user, target_id))


@blueprint.route("/api/v1/webhooks/<digits:target_id>", methods=["PATCH", "PUT"])
@accepts_bearer
async def api_update(target_id: str):
    user = await require_bearer_or_session(SCOPE)
    target = await service.get_target(user, target_id)
    target = await service.update_target(_herald(), user, target, await _json_body())
    return service.target_json(_herald(), target)


@blueprint.delete("/api/v1/webhooks/<digits:target_id>")
@accepts_bearer
async def api_delete(target_id: str):
    user = await require_bearer_or_session(SCOPE)
    target = await service.get_target(user, target_id)
    await service.delete_target(target)
    return "", 204


@blueprint.post("/api/v1/webhooks/<digits:target_id>/rotate-secret")
@accepts_bearer
async def api_rotate(target_id: str):
    user = await require_bearer_or_session(SCOPE)
    target = await service.get_target(user, target_id)
    secret = await service.rotate_secret(_herald(), target)
    return {"signing_secret": secret, "previous_valid_until": service._iso(target.previous_secret_expires_at)}


@blueprint.post("/api/v1/webhooks/<digits:target_id>/test")
@accepts_bearer
async def api_test(target_id: str):
    user = await require_bearer_or_session(SCOPE)
    target = await service.get_target(user, target_id)
    data = await _json_body()
    delivery = await webhook_enqueue.enqueue_test(_herald(), user, target, str(data.get("type", "")),
                                          data.get("printer_id"), notify=_worker().notify)
    return service.delivery_json(delivery), 202


@blueprint.get("/api/v1/webhooks/<digits:target_id>/deliveries")
@accepts_bearer
async def api_deliveries(target_id: str):
    user = await require_bearer_or_session(SCOPE)
    target = await service.get_target(user, target_id)
    try:
        limit = max(1, min(int(request.args.get("limit", 50)), 500))
    except ValueError:
        raise Invalid("limit must be a number from 1 to 500", code="invalid_limit") from None
    rows = await service.list_deliveries(target, limit=limit, status=request.args.get("status") or None)
    return {"deliveries": [service.delivery_json(d) for d in rows]}


@blueprint.get("/api/v1/webhooks/deliveries/<digits:delivery_id>")
@accepts_bearer
async def api_delivery(delivery_id: str):
    user = await require_bearer_or_session(SCOPE)
    delivery = await service.get_delivery(user, delivery_id)
    attempts = await service.delivery_attempts(delivery)
    return service.delivery_json(delivery, attempts)


@blueprint.post("/api/v1/webhooks/deliveries/<digits:delivery_id>/resend")
@accepts_bearer
async def api_resend(delivery_id: str):
    user = await require_bearer_or_session(SCOPE)
    delivery = await service.get_delivery(user, delivery_id)
    copy = await webhook_enqueue.resend(_herald(), delivery, notify=_worker().notify)
    return service.delivery_json(copy), 202


@blueprint.post("/api/v1/printer/webhooks/import")
@csrf_exempt
async def api_import_octoprint_webhooks():
    """The plugin moves OctoPrint-Webhooks' hooks here (printer key; owned by the printer's owner)."""
    key = bearer_credential()
    if key is None:
        raise Unauthenticated("Send the printer key as 'Authorization: Bearer hpk_...'.", challenge="Bearer")
    printer = await printer_for_key(_herald(), key)
    data = await _json_body()
    return await octoprint_import.import_hooks(_herald(), printer.owner_id, printer.id, data.get("hooks")), 200


# --- pages ------------------------------------------------------------------------------------


def _form_data(form) -> dict[str, Any]:
    data: dict[str, Any] = {key: form.get(key) for key in (
        "name", "url", "method", "content_type", "headers", "body", "device_identifier", "progress_step",
        "oauth_url", "oauth_method", "oauth_content_type", "oauth_headers", "preset")}
    data["events"] = form.getlist("events")
    data["messages"] = {t: form.get(f"message_{t}") or "" for t in service.EVENT_TOPICS if f"message_{t}" in form}
    data["printer_ids"] = form.getlist("printer_ids")
    data["oauth_enabled"] = form.get("oauth_enabled") == "on"
    data["enabled"] = form.get("enabled") == "on"
    if form.get("api_secret"):
        data["api_secret"] = form.get("api_secret")
    if form.get("clear_api_secret") == "on":
        data["api_secret"] = ""
    if form.get("oauth_body"):
        data["oauth_body"] = form.get("oauth_body")
    return data


async def _edit_page(user, values: dict[str, Any], *, target=None, errors=None, status=200, preset=None,
                     notice=None):
    printers = await printer_list(user)
    html = await render_template(
        "webhooks/edit.html", target=target, values=values, errors=errors or {}, printers=printers,
        event_topics=service.EVENT_TOPICS, methods=service.METHODS, preset=preset, notice=notice,
        signing_secret=_herald().secret_box.decrypt(target.signing_secret) if target else None)
    return html, status


def _errors_by_field(error: HeraldError) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in error.extra.get("details", []):
        where = f" (line {item['line']}, column {item['column']})" if "line" in item else ""
        out.setdefault(item["field"], []).append(item["problem"] + where)
    return out


@blueprint.get("/webhooks")
async def page_list():
    user = await require_user()
    targets = await service.list_targets(user)
    notice = {"deleted": "The webhook was deleted.", "enabled": "The webhook was enabled.",
              "disabled": "The webhook was disabled."}.get(request.args.get("done", ""))
    return await render_template("webhooks/list.html", targets=targets, presets=webhook_presets.PRESETS, notice=notice)


@blueprint.get("/webhooks/new")
async def page_new():
    user = await require_user()
    name = request.args.get("preset", "blank")
    preset = webhook_presets.PRESETS.get(name) or webhook_presets.PRESETS["blank"]
    values = {k: v for k, v in preset.items() if k not in ("label", "help")}
    values.update(name=preset["label"] if name != "blank" else "", preset=name, events=webhook_presets.DEFAULT_EVENTS,
                  progress_step=10, enabled=True, printer_ids=[])
    return await _edit_page(user, values, preset=preset)


@blueprint.post("/webhooks/new")
async def page_create():
    user = await require_user()
    data = _form_data(await request.form)
    try:
        target = await service.create_target(_herald(), user, data)
    except HeraldError as error:
        if not isinstance(error, Unprocessable):
            raise
        return await _edit_page(user, data, errors=_errors_by_field(error), status=422)
    return redirect(f"/webhooks/{target.id}?done=created")


_EDIT_NOTICES = {"created": "The webhook was saved.", "saved": "Your changes were saved.",
                 "rotated": "A new signing secret was made; the previous one signs for a while longer."}


@blueprint.get("/webhooks/<target_id>")
async def page_edit(target_id: str):
    user = await require_user()
    target = await service.get_target(user, target_id)
    values = {f: getattr(target, f) for f in (
        "name", "url", "method", "content_type", "headers", "body", "device_identifier", "progress_step",
        "events", "printer_ids", "enabled", "oauth_enabled", "oauth_url", "oauth_method",
        "oauth_content_type", "oauth_headers", "preset", "messages")}
    return await _edit_page(user, values, target=target, notice=_EDIT_NOTICES.get(request.args.get("done", "")))


@blueprint.post("/webhooks/<target_id>")
async def page_update(target_id: str):
    user = await require_user()
    target = await service.get_target(user, target_id)
    data = _form_data(await request.form)
    try:
        await service.update_target(_herald(), user, target, data)
    except HeraldError as error:
        if not isinstance(error, Unprocessable):
            raise
        return await _edit_page(user, data, target=target, errors=_errors_by_field(error), status=422)
    return redirect(f"/webhooks/{target.id}?done=saved")


@blueprint.post("/webhooks/<target_id>/toggle")
async def page_toggle(target_id: str):
    user = await require_user()
    target = await service.get_target(user, target_id)
    await service.set_enabled(target, not target.enabled)
    if target.enabled:
        _worker().notify()
    return redirect("/webhooks?done=" + ("enabled" if target.enabled else "disabled"))


@blueprint.post("/webhooks/<target_id>/rotate")
async def page_rotate(target_id: str):
    user = await require_user()
    target = await service.get_target(user, target_id)
    await service.rotate_secret(_herald(), target)
    return redirect(f"/webhooks/{target.id}?done=rotated")


@blueprint.post("/webhooks/<target_id>/delete")
async def page_delete(target_id: str):
    user = await require_user()
    target = await service.get_target(user, target_id)
    await service.delete_target(target)
    return redirect("/webhooks?done=deleted")


@blueprint.post("/webhooks/<target_id>/test")
async def page_test(target_id: str):
    user = await require_user()
    target = await service.get_target(user, target_id)
    form = await request.form
    delivery = await webhook_enqueue.enqueue_test(_herald(), user, target, form.get("type", ""),
                                          form.get("printer_id") or None, notify=_worker().notify)
    return redirect(f"/webhooks/deliveries/{delivery.id}")


@blueprint.get("/webhooks/<target_id>/deliveries")
async def page_deliveries(target_id: str):
    user = await require_user()
    target = await service.get_target(user, target_id)
    deliveries = await service.list_deliveries(target)
    return await render_template("webhooks/deliveries.html", target=target, deliveries=deliveries,
                                 event_topics=service.EVENT_TOPICS)


@blueprint.get("/webhooks/deliveries/<delivery_id>")
async def page_delivery(delivery_id: str):
    user = await require_user()
    delivery = await service.get_delivery(user, delivery_id)
    attempts = await service.delivery_attempts(delivery)
    shown = service.shown_request(delivery)
    return await render_template("webhooks/delivery.html", delivery=delivery, target=delivery.target,
                                 attempts=attempts, url=shown["url"],
                                 body=json.dumps(shown["body"], indent=2, ensure_ascii=False),
                                 headers=json.dumps(shown["headers"], indent=2, ensure_ascii=False))


@blueprint.post("/webhooks/deliveries/<delivery_id>/resend")
async def page_resend(delivery_id: str):
    user = await require_user()
    delivery = await service.get_delivery(user, delivery_id)
    copy = await webhook_enqueue.resend(_herald(), delivery, notify=_worker().notify)
    return redirect(f"/webhooks/deliveries/{copy.id}")
