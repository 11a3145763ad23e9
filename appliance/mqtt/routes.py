"""Admin > Home Assistant (the MQTT broker and its connection) and the printer page's publish toggle."""

from __future__ import annotations

from quart import Blueprint, redirect, render_template, request
from quart_schema import hide

from appliance.accounts.auth import require_user
from appliance.core.errors import HeraldError, Invalid, status_of
from appliance.core.herald import Herald, current_herald
from appliance.core.runtime_settings import effective_all, save_form
from appliance.mqtt.broker import BrokerLink, ConnectionState
from appliance.mqtt.publishing import set_publish_choice
from appliance.printers.views import owned_printer

blueprint = Blueprint("mqtt", __name__)

BROKER_FIELDS = ("mqtt_host", "mqtt_port", "mqtt_tls", "mqtt_username", "mqtt_password",
                 "mqtt_discovery_prefix", "mqtt_base_topic")
_DEFAULTS = {"mqtt_port": "1883", "mqtt_discovery_prefix": "homeassistant", "mqtt_base_topic": "herald"}


def _herald() -> Herald:
    return current_herald()


def connection_state(herald: Herald) -> ConnectionState:
    link = herald.part_or_none(BrokerLink)
    return link.state if link is not None else ConnectionState()


async def save_broker_settings(herald: Herald, form: dict[str, str]) -> None:
    """Store the broker settings an admin submitted (all or nothing), and reconnect with them."""
    await save_form(herald, form, BROKER_FIELDS, defaults=_DEFAULTS)
    link = herald.part_or_none(BrokerLink)
    if link is not None:
        link.reconfigured.set()


async def _admin_page(status: int = 200, **context):
    herald = _herald()
    values = await effective_all(herald)
    context.setdefault("errors", {})
    context.setdefault("notice", None)
    html = await render_template("mqtt/admin.html", section="home-assistant", values=values,
                                 from_env=herald.settings.from_env, password_set=bool(values["mqtt_password"]),
                                 connection=connection_state(herald), **context)
    return html, status, {"Cache-Control": "no-store"}


@blueprint.get("/admin/home-assistant")
@hide
async def admin_page():
    await require_user(admin=True)
    return await _admin_page(notice="Saved. Herald connects with the new settings." if request.args.get("done")
                             else None)


@blueprint.post("/admin/home-assistant")
@hide
async def admin_save():
    await require_user(admin=True)
    form = await request.form
    try:
        await save_broker_settings(_herald(), dict(form))
    except HeraldError as exc:
        return await _admin_page(status_of(exc), errors={exc.extra.get("field", "form"): exc.message})
    return redirect("/admin/home-assistant?done=1")


@blueprint.post("/printers/<printer_id>/home-assistant")
@hide
async def printer_toggle(printer_id: str):
    user = await require_user()
    printer = await owned_printer(user, printer_id)
    form = await request.form
    choice = form.get("publish", "")
    if choice not in ("on", "off"):
        raise Invalid("publish must be on or off.", field="publish", code="invalid_choice")
    await set_publish_choice(_herald(), printer, choice == "on")
    return redirect(f"/printers/{printer.id}?done=home-assistant-{choice}")
