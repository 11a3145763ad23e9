"""What Herald publishes for Home Assistant's MQTT discovery, as pure functions.

Per printer, one device (``identifiers`` ``herald_<printer id>``) with these entities, named as Home
Assistant's own OctoPrint integration names them where the two overlap (its sensor.py and
binary_sensor.py): "Current State", "Job Percentage", "Estimated Finish Time", "Start Time",
"Current File", "actual <tool> temp" / "target <tool> temp" for every tool, the bed and the
chamber, "Printing", "Printing Error"; Herald's own: "Z Height" and "Online" (connectivity).

Topics (``<base>`` is HERALD_MQTT_BASE_TOPIC, ``<prefix>`` the discovery prefix):

- ``<prefix>/<component>/herald_<id>/<key>/config``  retained discovery configs
- ``<base>/<id>/state``         retained JSON state, published on every status change
- ``<base>/<id>/availability``  retained ``online``/``offline``: the printer checks in
- ``<base>/status``             retained ``online``/``offline``: Herald is connected (its MQTT will)
- ``<base>/<id>/event/<type>``  not retained: a print event, for the device triggers

Every entity but "Online" is available while Herald is connected *and* the printer checks in; "Online"
only needs Herald, so it can say the printer is offline. Home Assistant 2024.3 (the newest release on
Python 3.11, which the tests run) reads one config per entity; device-wide discovery came later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from appliance.core.times import iso_utc
from appliance.printers.event_types import STATE_IDS

MANUFACTURER = "Herald"
# The plugin tells Herald no printer model (OctoPrint's printer profile is not sent), so the model
# names what Home Assistant talks to: an OctoPrint through Herald's plugin.
MODEL = "OctoPrint (Herald plugin)"

ONLINE, OFFLINE = "online", "offline"

# Herald's event type -> the device trigger's ``type`` (what automations choose in Home Assistant).
TRIGGERS: dict[str, str] = {
    "print.started": "print_started",
    "print.done": "print_done",
    "print.failed": "print_failed",
    "print.cancelled": "print_cancelled",
    "print.paused": "print_paused",
    "print.resumed": "print_resumed",
    "printer.user_action_needed": "needs_attention",
    "printer.error": "printer_error",
}
TRIGGER_SUBTYPE = "print"

# Temperatures published for every printer even before it reports them, so a new printer's device
# shows its usual entities at once; more tools (tool1, ...) and a chamber appear when reported.
BASE_TEMPERATURES = ("tool0", "bed")


@dataclass(frozen=True)
class Topics:
    discovery_prefix: str
    base: str

    def node(self, printer_id: str) -> str:
        return "herald_" + printer_id.replace("-", "")

    def config(self, component: str, printer_id: str, key: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node(printer_id)}/{key}/config"

    def state(self, printer_id: str) -> str:
        return f"{self.base}/{printer_id}/state"

    def availability(self, printer_id: str) -> str:
        return f"{self.base}/{printer_id}/availability"

    def event(self, printer_id: str, trigger: str) -> str:
        return f"{self.base}/{printer_id}/event/{trigger}"

    def command(self, printer_id: str) -> str:
        return f"{self.base}/{printer_id}/command"

    @property
    def herald_status(self) -> str:
        return f"{self.base}/status"

    @property
    def index(self) -> str:
        """Retained list of the printers this Herald has published, to clear removed ones after a restart."""
        return f"{self.base}/published"


# Home Assistant's buttons for control (mqtt/control.py): the command each sends, and its icon.
BUTTONS = (("pause", "mdi:pause"), ("resume", "mdi:play"), ("cancel", "mdi:stop"))


@dataclass(frozen=True)
class PublishedPrinter:
    """What discovery needs to know about a printer that is published."""

    id: str
    name: str
    plugin_version: str | None
    temperatures: tuple[str, ...] = field(default=BASE_TEMPERATURES)
    control: bool = False  # both opt-ins given (relay/control.py): the pause/resume/cancel buttons exist


@dataclass(frozen=True)
class Message:
    topic: str
    payload: str  # "" for an empty retained message: removes a config (and clears a retained topic)
    retain: bool


def device(printer: PublishedPrinter, base_url: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "identifiers": [f"herald_{printer.id}"],
        "name": printer.name,
        "manufacturer": MANUFACTURER,
        "model": MODEL,
        "configuration_url": f"{base_url}/printers/{printer.id}",
    }
    if printer.plugin_version:
        info["sw_version"] = printer.plugin_version
    return info


def temperature_keys(status: dict[str, Any] | None) -> tuple[str, ...]:
    """Tools, bed and chamber this status reports, after the ones every printer gets."""
    reported = sorted(((status or {}).get("temperatures") or {}).keys())
    return BASE_TEMPERATURES + tuple(key for key in reported if key not in BASE_TEMPERATURES)


def _entity_key(name: str) -> str:
    return name.lower().replace(" ", "_")


def entities(printer: PublishedPrinter) -> list[tuple[str, str, dict[str, Any]]]:
    """(component, key, the config's entity part) for each entity, without device and topics."""
    items: list[tuple[str, str, dict[str, Any]]] = [
        ("sensor", "current_state", {"name": "Current State", "device_class": "enum", "options": list(STATE_IDS),
                                     "value_template": "{{ value_json.state_id }}", "icon": "mdi:printer-3d"}),
        ("sensor", "job_percentage", {"name": "Job Percentage", "unit_of_measurement": "%",
                                      "state_class": "measurement", "suggested_display_precision": 1,
                                      "value_template": "{{ value_json.job_percentage }}",
                                      "icon": "mdi:file-percent"}),
        ("sensor", "estimated_finish_time", {"name": "Estimated Finish Time", "device_class": "timestamp",
                                             "value_template": "{{ value_json.estimated_finish_time }}"}),
        ("sensor", "start_time", {"name": "Start Time", "device_class": "timestamp",
                                  "value_template": "{{ value_json.start_time }}"}),
        ("sensor", "current_file", {"name": "Current File", "icon": "mdi:file",
                                    "value_template": "{{ value_json.current_file }}"}),
        ("sensor", "z_height", {"name": "Z Height", "device_class": "distance", "unit_of_measurement": "mm",
                                "state_class": "measurement", "suggested_display_precision": 2,
                                "value_template": "{{ value_json.z_height }}"}),
    ]
    for tool in printer.temperatures:
        for kind in ("actual", "target"):
            items.append(("sensor", f"{kind}_{tool}_temp", {
                "name": f"{kind} {tool} temp", "device_class": "temperature",
                "unit_of_measurement": "°C", "state_class": "measurement", "suggested_display_precision": 1,
                "value_template": f"{{{{ value_json.temperatures['{tool}'].{kind} }}}}"}))
    items += [
        ("binary_sensor", "printing", {"name": "Printing", "value_template": "{{ value_json.printing }}",
                                       "payload_on": "True", "payload_off": "False"}),
        ("binary_sensor", "printing_error", {"name": "Printing Error", "device_class": "problem",
                                             "value_template": "{{ value_json.state_id == 'error' }}",
                                             "payload_on": "True", "payload_off": "False"}),
        ("binary_sensor", "online", {"name": "Online", "device_class": "connectivity",
                                     "entity_category": "diagnostic",
                                     "value_template": "{{ value_json.online }}",
                                     "payload_on": "True", "payload_off": "False"}),
    ]
    if printer.control:
        items += [("button", f"{action}_print", {"name": f"{action.title()} Print", "payload_press": action,
                                                 "icon": icon})
                  for action, icon in BUTTONS]
    return items


def entity_configs(printer: PublishedPrinter, topics: Topics, base_url: str) -> list[Message]:
    """The retained discovery config of every entity of the printer."""
    dev = device(printer, base_url)
    messages = []
    for component, key, entity in entities(printer):
        config = {
            **entity,
            "unique_id": f"herald_{printer.id}_{key}",
            "device": dev,
            "availability": [{"topic": topics.herald_status}],
            "origin": {"name": "Herald", "support_url": base_url},
        }
        if component == "button":  # presses go to control.run_command; a button has no state
            config["command_topic"] = topics.command(printer.id)
        else:
            config["state_topic"] = topics.state(printer.id)
        if key != "online":  # the Online entity must stay available to say "offline"
            config["availability"].append({"topic": topics.availability(printer.id)})
            config["availability_mode"] = "all"
        messages.append(Message(topics.config(component, printer.id, key), _dumps(config), retain=True))
    return messages


def trigger_configs(printer: PublishedPrinter, topics: Topics, base_url: str) -> list[Message]:
    """One device trigger per print event (``device_automation`` discovery)."""
    dev = device(printer, base_url)
    return [Message(topics.config("device_automation", printer.id, trigger), _dumps({
        "automation_type": "trigger",
        "topic": topics.event(printer.id, trigger),
        "type": trigger,
        "subtype": TRIGGER_SUBTYPE,
        "device": dev,
    }), retain=True) for trigger in TRIGGERS.values()]


def button_removal(printer_id: str, topics: Topics) -> list[Message]:
    """Empty retained configs of the control buttons: control was turned off, the printer stays."""
    return [Message(topics.config("button", printer_id, f"{action}_print"), "", retain=True) for action, _ in BUTTONS]


def removal(printer_id: str, temperatures: tuple[str, ...], topics: Topics) -> list[Message]:
    """Empty retained configs (Home Assistant removes the entities and the device) and cleared topics."""
    gone = PublishedPrinter(id=printer_id, name="", plugin_version=None, temperatures=temperatures, control=True)
    configs = [topics.config(component, printer_id, key) for component, key, _ in entities(gone)]
    configs += [topics.config("device_automation", printer_id, trigger) for trigger in TRIGGERS.values()]
    configs += [topics.state(printer_id), topics.availability(printer_id)]
    return [Message(topic, "", retain=True) for topic in configs]


def state(view: dict[str, Any], temperatures: tuple[str, ...]) -> dict[str, Any]:
    """The JSON state topic's payload, from the contract's ``<printer>`` view.

    Times are computed from when the status arrived (``last_seen``), so the same status always
    gives the same payload: the estimated finish time is that moment plus the time left, the start
    time that moment less the time printed.
    """
    status = view.get("status") or {}
    job = status.get("job") or {}
    temps = status.get("temperatures") or {}
    seen = datetime.fromisoformat(view["last_seen"]) if view.get("last_seen") else None
    state_id = status.get("state_id")
    active = state_id in {"printing", "pausing", "paused", "resuming", "finishing", "cancelling"}
    left, spent = job.get("print_time_left"), job.get("print_time")
    return {
        "online": bool(view.get("online")),
        "state": status.get("state"),
        # the enum entity needs one of its options: a printer that never reported counts as offline
        "state_id": state_id or "offline",
        "printing": state_id == "printing",
        "job_percentage": job.get("progress") if active or state_id == "operational" else None,
        "estimated_finish_time": _at(seen, left) if active and left is not None else None,
        "start_time": _at(seen, -spent) if active and spent is not None else None,
        "current_file": job.get("file"),
        "z_height": job.get("z"),
        "temperatures": {key: {"actual": (temps.get(key) or {}).get("actual"),
                               "target": (temps.get(key) or {}).get("target")} for key in temperatures},
        "last_seen": view.get("last_seen"),
    }


def _at(moment: datetime | None, seconds: float) -> str | None:
    if moment is None:
        return None
    return iso_utc(moment + timedelta(seconds=seconds))


def state_message(view: dict[str, Any], printer: PublishedPrinter, topics: Topics) -> list[Message]:
    return [Message(topics.state(printer.id), _dumps(state(view, printer.temperatures)), retain=True),
            Message(topics.availability(printer.id), ONLINE if view.get("online") else OFFLINE, retain=True)]


def event_message(event_type: str, printer_id: str, payload: dict[str, Any], occurred_at: datetime | None,
                  topics: Topics) -> Message | None:
    trigger = TRIGGERS.get(event_type)
    if trigger is None:
        return None
    body = {"event": event_type, "occurred_at": iso_utc(occurred_at), "payload": payload}
    return Message(topics.event(printer_id, trigger), _dumps(body), retain=False)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
