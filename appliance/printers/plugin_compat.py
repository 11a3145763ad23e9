"""Which plugin versions this Herald works with (the plugin's POST /api/v1/printer/verify)."""

from __future__ import annotations

from appliance.core.errors import UpgradeRequired
from appliance.printers.models import Printer

MIN_PLUGIN_VERSION = "0.1.0"


def version_tuple(text: str) -> tuple[int, ...]:
    """The leading numbers of a version: "v0.2.0rc1" -> (0, 2, 0)."""
    parts = []
    for piece in text.strip().lstrip("vV").split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_plugin_version(plugin_version: str | None) -> None:
    """Refuse a plugin older than MIN_PLUGIN_VERSION (426); a plugin that sends none is let in."""
    if plugin_version and version_tuple(plugin_version) < version_tuple(MIN_PLUGIN_VERSION):
        raise UpgradeRequired(f"Herald needs plugin version {MIN_PLUGIN_VERSION} or newer "
                              f"(this is {plugin_version}); update the Herald plugin in OctoPrint.",
                              extra={"min_plugin_version": MIN_PLUGIN_VERSION}, code="plugin_outdated")


async def accept_plugin_version(printer_id: str, plugin_version: str | None) -> None:
    """The plugin's verify: refuse a too-old plugin, remember the version for the printer page.

    One small write per verify; the plugin verifies when it starts or is relinked, not per push.
    """
    check_plugin_version(plugin_version)
    if plugin_version:
        await Printer.filter(id=printer_id).update(plugin_version=plugin_version)


def plugin_behind(installed: str | None, carried: str | None) -> bool:
    """True when Herald carries a newer plugin than the printer runs."""
    return bool(installed and carried) and version_tuple(installed or "") < version_tuple(carried or "")
