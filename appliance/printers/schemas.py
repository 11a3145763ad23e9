"""Pydantic models of the /api/v1 printer contract (docs/printers.md, "The plugin API").

They validate request bodies (see ``appliance.core.jsonbody.read_model``) and
quart-schema documents them in the OpenAPI document at /api/v1/openapi.json.
Unknown fields are ignored (pydantic's default); types are strict, so a string
where a number belongs is a 422 naming the field rather than a silent coercion.
NaN and Infinity are refused everywhere in a body, open dicts included, before a
model sees it (``appliance.core.jsonbody.parse_json``); ``allow_inf_nan=False`` below
covers models validated from Python values too.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from appliance.printers.event_types import (
    EVENT_TYPES,
    HERALD_EVENT_TYPES,
    PLUGIN_EVENT_TYPES,
)

# The same words as STATE_IDS (a Literal must spell them out for type checkers).
StateId = Literal[
    "offline", "connecting", "operational", "printing", "pausing", "paused",
    "resuming", "cancelling", "finishing", "error",
]
JobResult = Literal["completed", "failed", "cancelled"]

# The event types of the contract's table: the only ones Herald stores, so the only
# ones the read API filters by. An unknown type is refused on POST (422) rather than
# stored: nothing in Herald could act on it (webhooks subscribe to these types), and
# a plugin that sends a new type needs a Herald that knows it (its MIN_HERALD_VERSION).
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


# The times an event may carry. A printer's clock (a Raspberry Pi without a real-time
# clock) may be off by days, never by centuries; outside this range is a broken clock
# or a made-up value, and year 1 in a +14:00 zone cannot even be turned into UTC.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_EVENT_TIME = datetime(2101, 1, 1, tzinfo=UTC)  # exclusive: up to the end of 2100

# What OctoPrint and pip call a version: 0.1.0, v1.2, 0.2.0.dev3, 1.0.0rc1, 0.1.0+local.
_VERSION = re.compile(r"[vV]?\d+(\.\d+)*([.+_-]?[0-9A-Za-z]+)*")


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


# --- linking -------------------------------------------------------------------------


class LinkStart(_Strict):
    printer_name: str = Field(min_length=1, max_length=100, description="A suggested printer name.")

    @field_validator("printer_name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank", "give the printer a name, not only spaces")
        return value


class LinkStarted(BaseModel):
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


class LinkPoll(_Strict):
    device_code: str = Field(min_length=1, max_length=200)


class LinkGranted(BaseModel):
    printer_id: str
    printer_key: str


class OAuthStyleError(BaseModel):
    error: str
    message: str


# --- printer key endpoints -----------------------------------------------------------


class VerifyRequest(_Strict):
    plugin_version: str | None = Field(default=None, max_length=40, description="The plugin's version, e.g. 0.1.0.")

    @field_validator("plugin_version")
    @classmethod
    def _a_version(cls, value: str | None) -> str | None:
        if value is not None and not _VERSION.fullmatch(value.strip()):
            raise PydanticCustomError("version", "not a version number like 0.1.0")
        return value


class VerifyResponse(BaseModel):
    printer_id: str
    name: str
    herald_version: str


class Temperature(_Strict):
    actual: float | None = None
    target: float | None = None


class JobStatus(_Strict):
    file: str | None = Field(default=None, max_length=1024)
    progress: float | None = Field(default=None, ge=0, le=100)
    print_time: float | None = Field(default=None, ge=0)
    print_time_left: float | None = Field(default=None, ge=0)
    z: float | None = None


class LastJob(_Strict):
    file: str | None = Field(default=None, max_length=1024)
    duration: float | None = Field(default=None, ge=0)
    result: JobResult | None = None


class PrinterOffline(_Strict):
    """The plugin's notice that OctoPrint is shutting down cleanly."""

    reason: str = Field(default="octoprint_shutdown", max_length=40, pattern=r"^[a-z_]+$",
                        description="Why the printer goes offline, e.g. octoprint_shutdown.")


class RelayConsent(_Strict):
    """What the printer's owner allowed in the plugin's settings (consent at the printer)."""

    enabled: bool = Field(description="Remote access through Herald's relay is on.")
    mint_api_keys: bool = Field(default=False, description="Apps may get an OctoPrint application key.")
    allow_control: bool = Field(default=False, description="Herald may pause, resume and cancel the current "
                                "print (it also needs the owner's yes in Herald).")


class PrinterStatus(_Strict):
    """The whole latest status of a printer; it replaces the previous one."""

    state: str | None = Field(max_length=200, description="OctoPrint's state text.")
    state_id: StateId | None
    temperatures: dict[str, Temperature | None] | None = Field(
        default=None, max_length=32, description="tool0, tool1, ..., bed, chamber; in degrees C."
    )
    job: JobStatus | None = None
    last_job: LastJob | None = None
    relay: RelayConsent | None = Field(
        default=None, description="The owner's consent to the relay, from the plugin's settings (older "
        "plugins send none: read as off).")
    local_ip: str | None = Field(
        default=None, max_length=45, description="The printer's IP address on its local network (optional; "
        "App Connections report it to apps). The plugin leaves it out when its setting is off.")

    @field_validator("local_ip")
    @classmethod
    def _ip_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise PydanticCustomError("ip_address", "must be an IP address such as 192.168.1.20") from None


class PrinterEvent(_Strict):
    id: str = Field(min_length=1, max_length=64, description="Unique per printer; repeats are ignored.")
    type: str = Field(min_length=3, max_length=40, pattern=r"^[a-z_]+\.[a-z_]+$")
    occurred_at: AwareDatetime = Field(description="ISO 8601 with a UTC offset.")
    payload: dict[str, Any] | None = None
    printer_data: dict[str, Any] | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value in HERALD_EVENT_TYPES:
            raise PydanticCustomError("herald_event", "{type} is recorded by Herald itself", {"type": value})
        if value not in EVENT_TYPES:
            raise PydanticCustomError("unknown_event", "unknown event type {type}; the plugin may send {known}",
                                      {"type": value, "known": ", ".join(PLUGIN_EVENT_TYPES)})
        return value

    @field_validator("occurred_at")
    @classmethod
    def _in_range(cls, value: datetime) -> datetime:
        if not EARLIEST_EVENT_TIME <= value < LATEST_EVENT_TIME:
            raise PydanticCustomError("time_range", "must be between 2000-01-01 and 2100-12-31 (UTC); "
                                      "is the printer's clock set?")
        return value


class EventAccepted(BaseModel):
    id: str
    sequence: int
    duplicate: bool


# --- reading status ------------------------------------------------------------------


class PrinterView(BaseModel):
    id: str
    name: str
    linked: bool
    online: bool
    last_seen: str | None = Field(description="ISO 8601 UTC, or null when never seen.")
    status: PrinterStatus | None


class PrinterList(BaseModel):
    printers: list[PrinterView]


# --- reading events ------------------------------------------------------------------


class EventQuery(BaseModel):
    """The query string of GET /api/v1/printers/<id>/events (documented, parsed by hand)."""

    limit: int = Field(default=50, ge=1, le=200, description="Events per page, 1 to 200.")
    before: str | None = Field(default=None, description=(
        "The `next` cursor of the previous page: the events that arrived before it. Opaque."))
    type: list[EventType] | None = Field(default=None, description=(
        "Only these event types; repeat the parameter (`type=print.done&type=print.failed`) "
        "or separate them with commas."))


class EventView(BaseModel):
    id: str = Field(description="The event's id as the plugin sent it (Herald's own events get a UUID).")
    type: str
    occurred_at: str = Field(description="When it happened on the printer, ISO 8601 UTC.")
    received_at: str = Field(description="When Herald received it, ISO 8601 UTC.")
    payload: dict[str, Any] | None = Field(description="The OctoPrint event's own payload.")
    snapshot: bool = Field(description="Whether a webcam snapshot came with it (kept only until delivered).")


class EventList(BaseModel):
    events: list[EventView] = Field(description="Newest (last received) first.")
    next: str | None = Field(description="Pass as `before` for the following page; null on the last page.")


class APIErrorBody(BaseModel):
    """What every 4xx of the JSON API carries (``appliance.core.errors.HeraldError``)."""

    error: str = Field(description="A stable machine code, e.g. invalid_request or not_found.")
    message: str = Field(description="What went wrong, for people; a bad parameter's name comes first.")
