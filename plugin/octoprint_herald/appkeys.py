"""OctoPrint application keys for apps connected through Herald, made and revoked at Herald's request.

OctoPrint 1.11's bundled Application Keys plugin ("appkeys") keeps per-user keys that OctoPrint's
API accepts like any API key (its ``octoprint.accesscontrol.keyvalidator`` hook). It offers no
helper for other plugins, so this module calls its implementation's own ``_add_api_key`` and
``_delete_api_key``, the methods its API commands use (read in octoprint/plugins/appkeys); a
newer OctoPrint without them is refused clearly rather than guessed at.

Herald asks over the tunnel (``handle_control``): ``mint_api_key {"app": name}`` -> ``{"key"}``,
``revoke_api_key {"key"}`` -> ``{"revoked": bool}``. Minting needs the owner's two yeses in the
plugin's settings and an active OctoPrint user to act for. The plugin remembers (as SHA-256
hashes, in its data folder) which keys it minted, so Herald can revoke those and nothing else:
never a key the owner made for another app, even if Herald asked.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading

from .relay_consent import relay_settings

_RECORD = "minted_app_keys.json"
_record_lock = threading.Lock()


class AppKeyRefused(Exception):
    """Herald's request for an application key was refused; ``reason`` says why, in plain words."""

    def __init__(self, reason: str, code: str = "api_key_refused") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _record_path(plugin) -> str:
    return os.path.join(plugin.get_plugin_data_folder(), _RECORD)


def _load(plugin) -> dict:
    try:
        with open(_record_path(plugin), encoding="utf-8") as handle:
            found = json.load(handle)
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError):
        return {}


def _save(plugin, record: dict) -> None:
    path = _record_path(plugin)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    os.replace(path + ".tmp", path)


def _appkeys(plugin):
    info = plugin._plugin_manager.get_plugin_info("appkeys", require_enabled=True)
    implementation = getattr(info, "implementation", None) if info is not None else None
    if implementation is None:
        raise AppKeyRefused("OctoPrint's Application Keys plugin is turned off, so no key can be made.",
                            "appkeys_missing")
    for method in ("_add_api_key", "_delete_api_key", "_api_key_for_user_and_app_id"):
        if not callable(getattr(implementation, method, None)):
            raise AppKeyRefused("This OctoPrint's Application Keys plugin is not one Herald knows "
                                "(OctoPrint 1.11); no key was made.", "appkeys_unsupported")
    return implementation


def _app_name(app_name) -> str:
    name = app_name.strip() if isinstance(app_name, str) else ""
    if not 2 <= len(name) <= 100 or any(ord(c) < 32 for c in name):
        raise AppKeyRefused("The app's name must be 2 to 100 printable characters.", "invalid_app_name")
    return name


def mint_app_key(plugin, app_name: str) -> str:
    """A new OctoPrint application key named ``app_name`` for the chosen user; AppKeyRefused if not allowed."""
    consent = relay_settings(plugin._settings.get(["relay"]))
    if not consent["enabled"]:
        raise AppKeyRefused("Remote access through Herald is off in this OctoPrint's Herald settings.",
                            "relay_off")
    if not consent["mint_api_keys"]:
        raise AppKeyRefused("This OctoPrint's owner has not allowed Herald to create API keys for apps "
                            "(Herald settings, Remote access).", "minting_off")
    user_id = consent["api_key_user"]
    if not user_id:
        raise AppKeyRefused("No OctoPrint user is chosen for apps' API keys in the Herald settings.", "no_user")
    user = plugin._user_manager.find_user(userid=user_id)
    if user is None or not getattr(user, "is_active", False):
        raise AppKeyRefused(f"The OctoPrint user {user_id!r} chosen for apps' API keys does not exist "
                            "or is deactivated.", "unknown_user")
    name = _app_name(app_name)
    appkeys = _appkeys(plugin)
    with _record_lock:
        record = _load(plugin)
        existing = appkeys._api_key_for_user_and_app_id(user_id, name)
        if existing is not None and _hash(existing.api_key) not in record:
            # The owner made this key themselves: handing it out (or later revoking it) is not Herald's.
            raise AppKeyRefused(f"{user_id} already has an application key named {name!r} that Herald did not "
                                "make; Herald will not hand it out.", "name_taken")
        key = appkeys._add_api_key(user_id, name)
        record[_hash(key)] = {"app": name, "user": user_id}
        _save(plugin, record)
    plugin._logger.info("Herald: made an OctoPrint application key %r for user %s", name, user_id)
    return key


def revoke_app_key(plugin, key: str) -> None:
    """Delete an application key this plugin minted; AppKeyRefused for any other key.

    Works while minting is turned off: an owner who stops minting still ends what was minted.
    A key the owner already deleted in OctoPrint is simply forgotten.
    """
    if not isinstance(key, str) or not key:
        raise AppKeyRefused("Send the key to revoke.", "invalid_key")
    digest = _hash(key)
    with _record_lock:
        record = _load(plugin)
        if digest not in record:
            raise AppKeyRefused("Herald did not make this key, so it will not revoke it.", "not_minted")
        _appkeys(plugin)._delete_api_key(key)
        entry = record.pop(digest)
        _save(plugin, record)
    plugin._logger.info("Herald: revoked the OctoPrint application key %r of %s", entry.get("app"),
                        entry.get("user"))


def handle_control(plugin, op: str, args: dict) -> dict:
    """A control message from Herald over the tunnel: the answer to send back, never an exception."""
    try:
        if op == "mint_api_key":
            return {"key": mint_app_key(plugin, (args or {}).get("app"))}
        if op == "revoke_api_key":
            revoke_app_key(plugin, (args or {}).get("key"))
            return {"revoked": True}
    except AppKeyRefused as refused:
        return {"error": refused.code, "message": refused.reason}
    except Exception:  # never raise into the tunnel
        plugin._logger.exception("Herald's %s request failed", op)
        return {"error": "failed", "message": f"The plugin could not {op.replace('_', ' ')}."}
    return {"error": "unknown_op", "message": f"The plugin knows no control operation {op!r}."}


def control_handlers(plugin) -> dict:
    """The tunnel's ``control_handlers``: ``op -> handler(args) -> dict``, each answering as handle_control."""
    return {op: (lambda args, op=op: handle_control(plugin, op, args)) for op in ("mint_api_key", "revoke_api_key")}
