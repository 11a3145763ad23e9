"""The JSON API under /api/v1 for printers: linking, the plugin's calls, reading status and events.

Routes parse and call a service. Bodies are read by ``appliance.core.jsonbody`` and
validated by the pydantic models in ``appliance.printers.schemas`` (documented in the
OpenAPI document by quart-schema): a body not sent as application/json is a 415,
an empty or malformed one a 400, a wrong shape (not an object, a wrong type, NaN
or Infinity) a 422 naming the field, a JSON body over 64 KiB a 413.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from quart import Blueprint, request
from quart_schema import document_querystring, document_request, document_response, security_scheme

from appliance import __version__
from appliance.accounts.auth import bearer_credential, csrf_exempt, require_bearer_or_session
from appliance.core.errors import (
    HeraldError,
    Invalid,
    TooLarge,
    Unauthenticated,
    UnsupportedMediaType,
)
from appliance.core.herald import Herald, current_herald
from appliance.core.jsonbody import (
    MAX_JSON_BYTES,
    is_json_type,
    parse_model,
    read_json_bytes,
    read_model,
)
from appliance.core.netaddr import client_address
from appliance.core.ratelimit import Limit
from appliance.printers import linking
from appliance.printers.event_types import EVENT_TYPES
from appliance.printers.events import (
    MAX_PAGE,
    check_snapshot,
    decode_cursor,
    event_page,
    post_event,
)
from appliance.printers.keys import printer_for_key
from appliance.printers.manage import tell_printer_changed, unlink_printer
from appliance.printers.pictures import MAX_PICTURE_BYTES, save_picture
from appliance.printers.plugin_compat import accept_plugin_version
from appliance.printers.schemas import (
    APIErrorBody,
    EventAccepted,
    EventList,
    EventQuery,
    LinkGranted,
    LinkPoll,
    LinkStart,
    LinkStarted,
    OAuthStyleError,
    PrinterEvent,
    PrinterList,
    PrinterOffline,
    PrinterStatus,
    PrinterView,
    VerifyRequest,
    VerifyResponse,
)
from appliance.printers.state import CachedPrinter
from appliance.printers.status import accept_goodbye, accept_status
from appliance.printers.views import owned_printer, printer_view, printer_views

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

# A print sends at most 101 events (started, progress at every whole percent 1-99, done)
# and a few pauses or prompts. Three back-to-back prints of a few seconds each fit in a
# minute, so a plugin at its cadence never meets the limit; a runaway one still does (429
# with Retry-After, which the plugin waits out exactly).
EVENTS_PER_PRINT = 110
EVENT_LIMIT = Limit(count=3 * EVENTS_PER_PRINT, per=60)  # events per printer

# OpenAPI security requirements: scheme name -> scopes.
_PRINTER_KEY: list[dict[str, list[str]]] = [{"printerKey": []}]
_READ: list[dict[str, list[str]]] = [{"accessToken": []}]


def _herald() -> Herald:
    return current_herald()


async def current_printer() -> CachedPrinter:
    key = bearer_credential()
    if key is None:
        raise Unauthenticated("Send the printer key as 'Authorization: Bearer hpk_...'.", challenge="Bearer")
    return await printer_for_key(_herald(), key)


# --- linking -------------------------------------------------------------------------


@blueprint.post("/link")
@csrf_exempt
@document_request(LinkStart)
@document_response(LinkStarted, 201)
async def link_start():
    herald = _herald()
    body = await read_model(LinkStart)
    address = client_address(request, herald.settings.trusted_proxies)
    started = await linking.start_link(herald, body.printer_name, address)
    return started.model_dump(), 201, {"Cache-Control": "no-store"}


@blueprint.post("/link/token")
@csrf_exempt
@document_request(LinkPoll)
@document_response(LinkGranted, 200)
@document_response(OAuthStyleError, 400)
async def link_token():
    body = await read_model(LinkPoll)
    granted = await linking.poll_link(_herald(), body.device_code)
    return granted, 200, {"Cache-Control": "no-store"}


# --- the plugin, with its printer key --------------------------------------------------


@blueprint.post("/printer/verify")
@csrf_exempt
@security_scheme(_PRINTER_KEY)
@document_request(VerifyRequest)
@document_response(VerifyResponse, 200)
async def printer_verify():
    printer = await current_printer()
    data = await read_json_bytes()
    body = parse_model(VerifyRequest, data) if data.strip() else VerifyRequest()
    await accept_plugin_version(printer.id, body.plugin_version)
    tell_printer_changed(current_herald(), printer.id)  # Home Assistant shows the plugin's version
    return {"printer_id": printer.id, "name": printer.name, "herald_version": __version__}


@blueprint.delete("/printer")
@csrf_exempt
@security_scheme(_PRINTER_KEY)
async def printer_unlink():
    printer = await current_printer()
    await unlink_printer(_herald(), printer.id)
    return "", 204


@blueprint.put("/printer/status")
@csrf_exempt
@security_scheme(_PRINTER_KEY)
@document_request(PrinterStatus)
async def printer_status():
    printer = await current_printer()
    body = await read_model(PrinterStatus)
    status = body.model_dump()
    if status.get("local_ip") is None:
        status.pop("local_ip", None)  # optional: older plugins (and the setting off) send none
    if status.get("relay") is None:
        status.pop("relay", None)  # optional: plugins before the relay send none (read as off)
    await accept_status(_herald(), printer, status)
    return "", 204


@blueprint.post("/printer/offline")
@csrf_exempt
@security_scheme(_PRINTER_KEY)
@document_request(PrinterOffline)
async def printer_offline():
    """OctoPrint is shutting down cleanly: the printer shows offline at once."""
    printer = await current_printer()
    data = await read_json_bytes()
    body = parse_model(PrinterOffline, data) if data.strip() else PrinterOffline()
    await accept_goodbye(_herald(), printer, body.reason)
    return "", 204


@blueprint.post("/printer/events")
@csrf_exempt
@security_scheme(_PRINTER_KEY)
@document_request(PrinterEvent)
@document_response(EventAccepted, 202)
async def printer_events():
    herald = _herald()
    printer = await current_printer()
    await herald.rate_limiter.hit(f"events:{printer.id}", EVENT_LIMIT, "Too many events from this printer.")
    snapshot = None
    if request.mimetype == "multipart/form-data":
        form = await request.form
        files = await request.files
        part = files.get("event")
        text: Any = part.read() if part is not None else form.get("event")
        if text is None:
            raise Invalid("event: the multipart body needs an 'event' JSON part.")
        if len(text) > MAX_JSON_BYTES:
            raise TooLarge("JSON bodies are limited to 64 KiB.")
        body = parse_model(PrinterEvent, text)
        upload = files.get("snapshot")
        if upload is not None:
            snapshot = check_snapshot(upload.read())
    else:
        if request.content_length and not is_json_type(request.mimetype):
            raise UnsupportedMediaType("Content-Type: send the event as application/json, or as multipart/form-data "
                           "with an 'event' part and a 'snapshot' part.")
        body = await read_model(PrinterEvent)
    recorded = await post_event(herald, printer.id, body, snapshot)
    return {"id": body.id, "sequence": recorded.event.sequence, "duplicate": recorded.duplicate}, 202


@blueprint.put("/printer/pictures/<kind>")
@csrf_exempt
@security_scheme(_PRINTER_KEY)
async def printer_picture(kind: str):
    """The job's thumbnail (once per job, ``X-Herald-Job-File`` naming the job) or a webcam
    snapshot: a PNG or JPEG body of at most 2 MiB. 204."""
    herald = _herald()
    printer = await current_printer()
    await herald.rate_limiter.hit(f"pictures:{printer.id}", EVENT_LIMIT, "Too many pictures from this printer.")
    if request.content_length and request.content_length > MAX_PICTURE_BYTES:
        raise TooLarge("A picture may be at most 2 MiB.", code="picture_too_large")
    data = await request.get_data(cache=False, as_text=False)
    if not isinstance(data, bytes):
        data = data.encode()
    job_file = unquote(request.headers.get("X-Herald-Job-File", "")) or None  # percent-encoded UTF-8
    save_picture(herald, printer.id, kind, data, job_file=job_file)
    return "", 204


# --- reading status ------------------------------------------------------------------


@blueprint.get("/printers")
@security_scheme(_READ)
@document_response(PrinterList, 200)
async def printers_list():
    user = await require_bearer_or_session("printers:read")
    return {"printers": await printer_views(_herald(), user)}


@blueprint.get("/printers/<printer_id>")
@security_scheme(_READ)
@document_response(PrinterView, 200)
async def printers_one(printer_id: str):
    user = await require_bearer_or_session("printers:read")
    printer = await owned_printer(user, printer_id)
    return printer_view(_herald(), printer)


def _bad_parameter(name: str, problem: str) -> HeraldError:
    return Invalid(f"{name}: {problem}", extra={"details": [{"field": name, "problem": problem}]})


def _event_query() -> tuple[int, int | None, list[str]]:
    """limit, before (a sequence) and the event types of the query string; 400 naming a bad one."""
    args = request.args
    limit = 50
    if "limit" in args:
        text = args["limit"].strip()
        limit = int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else 0
        if not 1 <= limit <= MAX_PAGE:
            raise _bad_parameter("limit", f"must be a whole number from 1 to {MAX_PAGE}, not {text[:20]!r}")
    before = decode_cursor(args["before"]) if "before" in args else None
    types: list[str] = []
    for value in args.getlist("type"):
        for name in value.split(","):
            name = name.strip()
            if name not in EVENT_TYPES:
                shown = repr(name[:40]) if name else "an empty name"
                raise _bad_parameter("type", f"unknown event type {shown}; known types: {', '.join(EVENT_TYPES)}")
            if name not in types:
                types.append(name)
    return limit, before, types


@blueprint.get("/printers/<printer_id>/events")
@security_scheme(_READ)
@document_querystring(EventQuery)
@document_response(EventList, 200)
@document_response(APIErrorBody, 400)
@document_response(APIErrorBody, 404)
async def printers_events(printer_id: str):
    """A printer's events, newest first, a page at a time (follow `next` with `before`)."""
    user = await require_bearer_or_session("printers:read")
    printer = await owned_printer(user, printer_id)
    limit, before, types = _event_query()
    page = await event_page(printer.id, limit=limit, before=before, types=types)
    return {"events": page.events, "next": page.next}


