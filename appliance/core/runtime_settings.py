"""Settings an admin may change in the web UI (stored in the database).

Precedence: an environment variable wins; else the database value; else the
TOML file or default. Secret values (the SMTP password) are stored encrypted.
"""

from __future__ import annotations

from typing import Any

from appliance.core.db import shielded
from appliance.core.errors import Conflict, Invalid
from appliance.core.herald import Herald
from appliance.core.models import RuntimeSetting
from appliance.core.settings import SETTINGS, SettingsError, _parse

_RUNTIME = {s.name: s for s in SETTINGS if s.runtime}


async def effective(herald: Herald, name: str) -> Any:
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


async def effective_all(herald: Herald) -> dict[str, Any]:
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


async def set_runtime(herald: Herald, name: str, raw: Any) -> Any:
    """Store an admin's change. Refused when the environment sets the value."""
    setting = _RUNTIME.get(name)
    if setting is None:
        raise Invalid(f"{name} cannot be changed in the web UI.", code="unknown_setting")
    if name in herald.settings.from_env:
        raise Conflict(f"{name} is set by the environment variable HERALD_{name.upper()}; change it there.", code="set_by_environment")
    try:
        value = _parse(name, raw)
    except SettingsError as exc:
        raise Invalid(str(exc), extra={"field": name}, code="invalid_setting") from None
    text = ", ".join(value) if isinstance(value, list) else str(value)
    stored = herald.secret_box.encrypt(text) if setting.secret else text
    await shielded(
        RuntimeSetting.update_or_create(name=name, defaults={"value": stored, "encrypted": setting.secret})
    )
    return value


async def save_form(herald: Herald, form: dict[str, str], names: tuple[str, ...], *,
                    defaults: dict[str, str], check=None) -> None:
    """Store the runtime settings an admin submitted on a page, all or nothing.

    Fields set by the environment are skipped; an empty field takes its default from ``defaults``;
    an empty secret keeps the stored one unless ``clear_password`` is given. ``check(changes)``
    may refuse the whole form before anything is stored.
    """
    changes: dict[str, str] = {}
    for name in names:
        if name in herald.settings.from_env:
            continue
        value = (form.get(name) or "").strip()
        if _RUNTIME[name].secret:
            if form.get("clear_password"):
                value = ""
            elif not value:
                continue
        if not value and name in defaults:
            value = defaults[name]
        try:
            _parse(name, value)
        except SettingsError as exc:
            raise Invalid(str(exc).split(": ", 1)[-1], extra={"field": name}, code="invalid_setting") from None
        changes[name] = value
    if check is not None:
        check(changes)
    for name, value in changes.items():
        await set_runtime(herald, name, value)
