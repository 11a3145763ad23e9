"""From OctoPrint's data to Herald's payloads: pure functions and one small stateful mapper.

Nothing here touches the network or OctoPrint's objects directly, so unit tests can feed
it the plain dicts OctoPrint's printer returns.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
import uuid

# OctoPrint's printer.get_state_id() -> the contract's state_id.
_STATE_IDS = {
    "OFFLINE": "offline",
    "NONE": "offline",
    "CLOSED": "offline",
    "UNKNOWN": "offline",
    "OPEN_SERIAL": "connecting",
    "DETECT_SERIAL": "connecting",
    "DETECT_BAUDRATE": "connecting",
    "CONNECTING": "connecting",
    "OPERATIONAL": "operational",
    "TRANSFERING_FILE": "operational",
    "STARTING": "printing",
    "PRINTING": "printing",
    "PAUSING": "pausing",
    "PAUSED": "paused",
    "RESUMING": "resuming",
    "CANCELLING": "cancelling",
    "FINISHING": "finishing",
    "ERROR": "error",
    "CLOSED_WITH_ERROR": "error",
}

_TEMPERATURE_KEY = re.compile(r"^(tool\d+|bed|chamber)$")


def state_id(octoprint_state_id: str | None) -> str:
    """OctoPrint's state id (``"PRINTING"``) as the contract's lower-case state id."""
    return _STATE_IDS.get((octoprint_state_id or "OFFLINE").upper(), "offline")


def _number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN counts as unknown


def _seconds(value) -> int | None:
    number = _number(value)
    return None if number is None else int(round(number))


def temperatures(current: dict | None) -> dict:
    """OctoPrint's get_current_temperatures() as ``{"tool0": {"actual", "target"}, ...}``."""
    result = {}
    for key, reading in sorted((current or {}).items()):
        if not _TEMPERATURE_KEY.match(str(key)) or not isinstance(reading, dict):
            continue
        result[key] = {"actual": _number(reading.get("actual")), "target": _number(reading.get("target"))}
    return result


def build_status(data: dict | None, temps: dict | None, octoprint_state_id: str | None,
                 last_job: dict | None, *, publish_file_names: bool = True) -> dict:
    """The whole status document of ``PUT /api/v1/printer/status``.

    ``data`` is printer.get_current_data(), ``temps`` printer.get_current_temperatures(),
    ``last_job`` what the plugin remembered of the last finished job (or None).
    """
    data = data or {}
    state = data.get("state") or {}
    job = data.get("job") or {}
    progress = data.get("progress") or {}
    file = (job.get("file") or {}) if isinstance(job, dict) else {}
    file_name = file.get("display") or file.get("name")
    completion = _number(progress.get("completion"))
    if completion is not None:
        completion = round(max(0.0, min(100.0, completion)), 2)
    status = {
        "state": state.get("text") or "Offline",
        "state_id": state_id(octoprint_state_id),
        "temperatures": temperatures(temps),
        "job": {
            "file": (file_name or None) if publish_file_names else None,
            "progress": completion,
            "print_time": _seconds(progress.get("printTime")),
            "print_time_left": _seconds(progress.get("printTimeLeft")),
            "z": _number(data.get("currentZ")),
        },
        "last_job": None,
    }
    if last_job:
        status["last_job"] = {
            "file": last_job.get("file") if publish_file_names else None,
            "duration": _seconds(last_job.get("duration")),
            "result": last_job.get("result"),
        }
    return status


def json_safe(value):
    """A deep copy that json.dumps accepts (OctoPrint payloads may hold odd types)."""
    return json.loads(json.dumps(value, default=str))


# The state an event's snapshot shows once the event has happened: OctoPrint fires
# PrintStarted while it is still "Starting" and PrintPaused while "Pausing", where
# OctoPrint-Webhooks' receivers saw "Printing" and "Paused" (its calls came later).
_PRINTING_FLAGS = {"operational": True, "printing": True, "paused": False, "pausing": False,
                   "resuming": False, "cancelling": False, "finishing": False, "ready": False}
_EVENT_STATES = {
    "print.started": ("Printing", _PRINTING_FLAGS),
    "print.resumed": ("Printing", _PRINTING_FLAGS),
    "print.paused": ("Paused", {**_PRINTING_FLAGS, "printing": False, "paused": True}),
}
# Transitional states a progress report may still see at the start of a print.
_STARTING = ("Starting", "Starting print from SD", "Starting to send file to SD")


META_HISTORY = 20  # newest entries of @meta.history sent with an event


META_LIMIT = 24 * 1024  # bytes of JSON: an event is at most 64 KiB


def _bounded_meta(meta: dict) -> dict:
    """The metadata cut to fit an event: the newest history entries, then OctoPrint's own keys only."""
    history = meta.get("history")
    if isinstance(history, list) and len(history) > META_HISTORY:
        meta["history"] = history[-META_HISTORY:]
    for keep in (None, ("hash", "analysis", "statistics", "history"), ("hash", "statistics")):
        if keep is not None:
            meta = {k: v for k, v in meta.items() if k in keep}
        if len(json.dumps(meta, default=str)) <= META_LIMIT:
            return meta
    return {"hash": meta.get("hash")} if meta.get("hash") else {}


def event_printer_data(event_type: str, data: dict | None, meta: dict | None = None) -> dict:
    """An event's snapshot of the printer: OctoPrint's current data agreeing with the event.

    ``meta`` is the file manager's metadata of the job's file (hash, analysis, statistics,
    history), sent as ``meta`` as OctoPrint-Webhooks does; it is left out when unknown.
    """
    result = copy.deepcopy(data or {})
    if meta:
        result["meta"] = copy.deepcopy(meta)
        result["meta"] = _bounded_meta(result["meta"])
    state = result.get("state")
    wanted = _EVENT_STATES.get(event_type)
    if wanted is None and event_type == "print.progress" and isinstance(state, dict) \
            and state.get("text") in _STARTING:
        wanted = _EVENT_STATES["print.started"]
    if wanted is not None and isinstance(state, dict):
        if not str(state.get("text") or "").startswith(wanted[0]):  # keep "Printing from SD"
            state["text"] = wanted[0]
        flags = state.get("flags")
        if isinstance(flags, dict):
            flags.update(wanted[1])
    if event_type == "print.started":
        # At the start nothing is printed yet. OctoPrint's event thread may run this a moment late,
        # when the current data already shows a few percent (seen on a busy machine: 2.4 %), and
        # "Print Started" must still say 0, as OctoPrint-Webhooks' receivers expect.
        progress = result.get("progress")
        if isinstance(progress, dict):
            progress.update(completion=0.0, filepos=0, printTime=0)
    return result


def file_of(data: dict | None) -> tuple[str | None, str | None]:
    """(origin, path) of the job's file in OctoPrint's current data, or (None, None)."""
    job = (data or {}).get("job") or {}
    file = job.get("file") if isinstance(job, dict) else None
    if not isinstance(file, dict) or not isinstance(file.get("path"), str) or not file.get("path"):
        return None, None
    return file.get("origin") or "local", file["path"]


_FILE_KEYS = ("name", "path", "display", "file", "filename")


def hide_file_names(payload: dict | None, printer_data: dict | None) -> tuple[dict, dict]:
    """Copies of an event's payload and snapshot with every file name set to None."""
    payload = copy.deepcopy(payload or {})
    printer_data = copy.deepcopy(printer_data or {})
    for key in _FILE_KEYS:
        if key in payload:
            payload[key] = None
    job = printer_data.get("job")
    if isinstance(job, dict) and isinstance(job.get("file"), dict):
        for key in _FILE_KEYS:
            if key in job["file"]:
                job["file"][key] = None
    return payload, printer_data


def now_iso() -> str:
    """The local time with its UTC offset, as the contract's ``occurred_at`` wants."""
    return datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")


# The OctoPrint events that become Herald events one-to-one.
SIMPLE_EVENTS = {
    "PrintStarted": "print.started",
    "PrintPaused": "print.paused",
    "PrintResumed": "print.resumed",
    "Error": "printer.error",
}

# Events after which the status is pushed at once (besides every mapped event).
STATUS_EVENTS = {
    "PrinterStateChanged", "Connected", "Disconnected", "PrintStarted", "PrintDone", "PrintFailed",
    "PrintCancelled", "PrintPaused", "PrintResumed", "Error", "FileSelected", "FileDeselected",
}

_PAUSED_FOR_USER = re.compile(r"busy:?\s*paused for user", re.IGNORECASE)


class EventMapper:
    """Turns OctoPrint's events, progress reports and firmware lines into Herald events.

    It keeps the little state the mapping needs: whether the running job already produced
    its terminal event (OctoPrint fires PrintCancelled and PrintFailed for one cancel),
    the last whole percent sent, and whether a user-action prompt is already reported.
    Each method returns a list of ``(type, payload)`` pairs (usually zero or one).
    """

    def __init__(self) -> None:
        self._cancel_sent = False
        self._last_progress = 0
        self._job_over = False
        self._waiting_for_user = False

    # -- OctoPrint events -------------------------------------------------------------
    def on_event(self, event: str, payload: dict | None) -> list[tuple[str, dict]]:
        payload = dict(payload or {})
        if event == "PrintStarted":
            self._cancel_sent = False
            self._last_progress = 0
            self._job_over = False
            self._waiting_for_user = False
        if event == "PrintDone":
            # OctoPrint reports progress from its own threads, which may run after PrintDone:
            # a finished print has passed every percent, so send the missing ones first.
            path = payload.get("path") or payload.get("name") or ""
            events = self.on_progress(payload.get("origin") or "local", path, 99)
            self._job_over = True
            return [*events, ("print.done", payload)]
        if event in SIMPLE_EVENTS:
            return [(SIMPLE_EVENTS[event], payload)]
        if event == "PrintCancelled":
            self._job_over = True
            return self._cancelled(payload)
        if event == "PrintFailed":
            self._job_over = True
            if payload.get("reason") == "cancelled" or self._cancel_sent:
                return self._cancelled(payload)
            return [("print.failed", payload)]
        return []

    def _cancelled(self, payload: dict) -> list[tuple[str, dict]]:
        if self._cancel_sent:
            return []
        self._cancel_sent = True
        return [("print.cancelled", payload)]

    # -- progress ---------------------------------------------------------------------
    def on_progress(self, storage: str, path: str, progress: int) -> list[tuple[str, dict]]:
        """One event per whole percent from 1 to 99, filling any percent OctoPrint skipped."""
        progress = int(progress)
        if self._job_over:
            return []  # a late report from the job that just ended
        if progress <= 0:
            self._last_progress = 0
            return []
        events = []
        for percent in range(self._last_progress + 1, min(progress, 99) + 1):
            events.append(("print.progress", {"progress": percent, "origin": storage, "path": path,
                                              "name": path.rsplit("/", 1)[-1] if path else path}))
        self._last_progress = max(self._last_progress, min(progress, 99))
        return events

    # -- firmware lines ---------------------------------------------------------------
    def on_received_line(self, line: str) -> list[tuple[str, dict]]:
        """``echo:busy: paused for user`` repeats every few seconds: report it once per pause."""
        if _PAUSED_FOR_USER.search(line):
            return self._user_action({"line": line.strip()}, reason="paused_for_user")
        if line.startswith("ok"):
            self._waiting_for_user = False
        return []

    def on_sent_command(self, gcode: str | None) -> list[tuple[str, dict]]:
        if gcode and gcode.upper() == "M600":
            return self._user_action({"command": "M600"}, reason="filament_change")
        return []

    def _user_action(self, payload: dict, *, reason: str) -> list[tuple[str, dict]]:
        if self._waiting_for_user:
            return []
        self._waiting_for_user = True
        return [("printer.user_action_needed", {"reason": reason, **payload})]


def new_event_id() -> str:
    return str(uuid.uuid4())
