"""Settings an admin may change in the web UI (stored in the database).

Precedence: an environment variable wins; else the database value; else the
TOML file or default. Secret values (the SMTP password) are stored encrypted.
"""

from __future__ import annotations

from typing import Any

from appliance.db import shielded
from appliance.errors import APIError
from appliance.models import RuntimeSetting
from appliance.settings import SETTINGS, SettingsError, _parse

_RUNTIME = {s.name: s for s in SETTINGS if s.runtime}


async def effective(herald, name: str) -> Any:
    """The value in force for a runtime setting."""
    setting = _RUNTIME[name]
    if name in herald.settings.from_env:
        return herald.settings.values[name]
    row = await RuntimeSetting.get_or_none(name=name)
    if row is None:
        return herald.settings.values[name]
    raw = herald.secret_box.decrypt(row.value) if row.encrypted else row.value
    try:
        return setting.parse(raw)
    except (TypeError, ValueError):
        return herald.settings.values[name]


async def effective_all(herald) -> dict[str, Any]:
    rows = {row.name: row for row in await RuntimeSetting.all()}
    values = {}
    for name, setting in _RUNTIME.items():
        value = herald.settings.values[name]
        row = rows.get(name)
        if name not in herald.settings.from_env and row is not None:
            raw = herald.secret_box.decrypt(row.value) if row.encrypted else row.value
            try:
                value = setting.parse(raw)
            except (TypeError, ValueError):
                pass  # a value stored by an older version that no longer parses: use the default
        values[name] = value
    return values


async def set_runtime(herald, name: str, raw: Any) -> Any:
    """Store an admin's change. Refused when the environment sets the value."""
    setting = _RUNTIME.get(name)
    if setting is None:
        raise APIError(400, "unknown_setting", f"{name} cannot be changed in the web UI.")
    if name in herald.settings.from_env:
        raise APIError(409, "set_by_environment",
                       f"{name} is set by the environment variable HERALD_{name.upper()}; change it there.")
    try:
        value = _parse(name, raw)
    except SettingsError as exc:
        raise APIError(400, "invalid_setting", str(exc), extra={"field": name}) from None
    text = ", ".join(value) if isinstance(value, list) else str(value)
    stored = herald.secret_box.encrypt(text) if setting.secret else text
    await shielded(
        RuntimeSetting.update_or_create(name=name, defaults={"value": stored, "encrypted": setting.secret})
    )
    return value
