"""Finding OctoPrint-Webhooks' hooks in OctoPrint's settings, for the move to Herald.

OctoPrint-Webhooks keeps its hooks in ``plugins.webhooks.hooks`` of config.yaml (settings
version 2 and later); version 1 kept one hook's settings directly under
``plugins.webhooks``. Herald converts them (``POST /api/v1/printer/webhooks/import``);
this module only reads them, summarises them for the settings page and turns them off.
"""

from __future__ import annotations

import copy

HOOKS_PATH = ["plugins", "webhooks", "hooks"]
PLUGIN_PATH = ["plugins", "webhooks"]

# OctoPrint-Webhooks' event switches and the words the settings page shows for them.
EVENT_SWITCHES = (
    ("eventPrintStarted", "Print Started"), ("eventPrintDone", "Print Done"),
    ("eventPrintFailed", "Print Failed"), ("eventPrintPaused", "Print Paused"),
    ("eventUserActionNeeded", "User Action Needed"), ("eventError", "Error"),
    ("event_print_progress", "Print Progress"),
)


def find_hooks(plugin_settings: dict | None) -> list[dict]:
    """The hooks in OctoPrint-Webhooks' settings (``plugins.webhooks``), oldest layout included."""
    settings = plugin_settings if isinstance(plugin_settings, dict) else {}
    hooks = settings.get("hooks")
    if isinstance(hooks, list) and hooks:
        return [copy.deepcopy(h) for h in hooks if isinstance(h, dict)]
    if settings.get("url"):  # settings version 1: one hook, not yet migrated by the plugin
        return [{k: copy.deepcopy(v) for k, v in settings.items() if k not in ("hooks", "settings_version")}]
    return []


def _on(value) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes", "on")


def summary(hooks: list[dict]) -> list[dict]:
    """What the settings page lists of each hook (no secrets)."""
    out = []
    for index, hook in enumerate(hooks):
        out.append({
            "index": index,
            "url": str(hook.get("url") or ""),
            "method": str(hook.get("http_method") or "POST"),
            "enabled": _on(hook.get("webhook_enabled", True)),
            "oauth": _on(hook.get("oauth", False)),
            "events": [label for key, label in EVENT_SWITCHES if _on(hook.get(key, False))],
        })
    return out


def turned_off(plugin_settings: dict | None, indexes: list[int]) -> tuple[list[dict], list[int]]:
    """The hooks list with the given hooks' ``webhook_enabled`` false, and the indexes changed."""
    hooks = copy.deepcopy((plugin_settings or {}).get("hooks") or [])
    changed = []
    for index in indexes:
        if isinstance(index, int) and 0 <= index < len(hooks) and isinstance(hooks[index], dict) \
                and _on(hooks[index].get("webhook_enabled", True)):
            hooks[index]["webhook_enabled"] = False
            changed.append(index)
    return hooks, changed
