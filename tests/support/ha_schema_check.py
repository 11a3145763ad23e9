"""Run by the Home Assistant venv's Python: validate discovery payloads with Home Assistant's own schemas.

stdin: a JSON list of {"topic", "component", "payload"}; stdout: a JSON list of {"topic", "error"}
for each payload Home Assistant's MQTT integration would refuse (empty when all pass).
"""

import json
import sys

import voluptuous as vol
from homeassistant.components.mqtt import binary_sensor, button, device_trigger, sensor
from homeassistant.components.mqtt.abbreviations import ABBREVIATIONS, DEVICE_ABBREVIATIONS

SCHEMAS = {
    "sensor": sensor.DISCOVERY_SCHEMA,
    "binary_sensor": binary_sensor.DISCOVERY_SCHEMA,
    "button": button.DISCOVERY_SCHEMA,
    "device_automation": device_trigger.TRIGGER_DISCOVERY_SCHEMA,
}


def main() -> None:
    problems = []
    for item in json.load(sys.stdin):
        payload = dict(item["payload"])
        unknown = [key for key in payload if key not in ABBREVIATIONS.values() and key not in
                   ("device", "availability", "origin", "automation_type", "type", "subtype", "payload",
                    "options", "suggested_display_precision", "availability_mode")]
        device_unknown = [key for key in payload.get("device", {}) if key not in DEVICE_ABBREVIATIONS.values()]
        try:
            SCHEMAS[item["component"]](payload)
        except (vol.Invalid, KeyError) as exc:
            problems.append({"topic": item["topic"], "error": str(exc)})
        if unknown or device_unknown:
            problems.append({"topic": item["topic"], "error": f"keys Home Assistant does not know: {unknown + device_unknown}"})
    json.dump(problems, sys.stdout)


main()
