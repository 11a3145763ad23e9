"""Pause, resume and cancel from the printer page (session + CSRF) and the JSON API (scope printers:control).

Parse, call relay/control.py's one rule, answer. The page's forms post here and come back to the
printer page; the API answers JSON through core/errors' mapping (403 not allowed, 503 relay off).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, redirect, request
from quart_schema import document_request, document_response, hide, security_scheme

from appliance.accounts.auth import accepts_bearer, require_bearer_or_session, require_user
from appliance.core.herald import current_herald
from appliance.core.jsonbody import read_model
from appliance.printers.schemas import APIErrorBody
from appliance.printers.views import owned_printer
from appliance.relay.control import control_print, set_control

blueprint = Blueprint("printer_control", __name__)

_CONTROL: list[dict[str, list[str]]] = [{"accessToken": ["printers:control"]}]


class JobCommand(BaseModel):
    """A command for the printer's current print. There is no start: Herald never starts a print."""

    model_config = ConfigDict(strict=True, extra="ignore")
    action: Literal["pause", "resume", "cancel"] = Field(description="What to do with the current print.")


class JobCommandDone(BaseModel):
    action: Literal["pause", "resume", "cancel"]
    state: str | None = Field(default=None, description="OctoPrint's state_id before the command.")


@blueprint.post("/api/v1/printers/<printer_id>/job")
@accepts_bearer
@security_scheme(_CONTROL)
@document_request(JobCommand)
@document_response(JobCommandDone, 200)
@document_response(APIErrorBody, 400)
@document_response(APIErrorBody, 403)
@document_response(APIErrorBody, 404)
@document_response(APIErrorBody, 503)
async def api_job(printer_id: str):
    """Pause, resume or cancel the printer's current print over its relay: scope printers:control, and both
    opt-ins (the plugin's relay.allow_control and the printer page's Control switch). Never a start."""
    user = await require_bearer_or_session("printers:control")
    await owned_printer(user, printer_id)  # someone else's printer is 404 whatever the body says
    command = await read_model(JobCommand)
    return await control_print(current_herald(), user, printer_id, command.action, "api")


@blueprint.post("/printers/<printer_id>/job")
@hide
async def page_job(printer_id: str):
    """The printer page's Pause / Resume / Cancel buttons."""
    user = await require_user()
    form = await request.form
    await control_print(current_herald(), user, printer_id, form.get("action"), "web")
    return redirect(f"/printers/{printer_id}#control", 303)


@blueprint.post("/printers/<printer_id>/control")
@hide
async def page_control(printer_id: str):
    """The printer page's opt-in: control from Herald on or off for this printer."""
    user = await require_user()
    form = await request.form
    await set_control(current_herald(), user, printer_id, form.get("allow") == "on")
    return redirect(f"/printers/{printer_id}#control", 303)
