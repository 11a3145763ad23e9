"""The owner's actions on a printer: add (with a key shown once), rename, new key, unlink, remove."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from appliance.accounts.models import User
from appliance.core.db import shielded
from appliance.core.errors import Invalid
from appliance.core.herald import Herald
from appliance.core.secrets import PRINTER_KEY_PREFIX, new_token, token_hash
from appliance.printers.models import Printer
from appliance.printers.state import printer_state
from appliance.printers.views import owned_printer

log = logging.getLogger(__name__)

MAX_PRINTER_NAME = 100


def clean_printer_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise Invalid("Give the printer a name.", field="name", code="invalid_name")
    if len(name) > MAX_PRINTER_NAME:
        raise Invalid(f"Printer names can be at most {MAX_PRINTER_NAME} characters.", field="name", code="invalid_name")
    return name


@dataclass(frozen=True)
class NewKey:
    printer: Printer
    key: str  # shown once, never stored


async def create_printer(herald: Herald, user: User, name: str, *, connection=None) -> NewKey:
    """A new linked printer (the manual "Add printer" path); its key is returned once."""
    name = clean_printer_name(name)
    key = new_token(PRINTER_KEY_PREFIX)
    now = herald.clock.now()
    printer = await shielded(Printer.create(
        id=str(uuid.uuid4()), owner_id=user.id, name=name, key_hash=token_hash(key),
        linked_at=now, changed_at=now, using_db=connection,
    ))
    return NewKey(printer=printer, key=key)


def clean_spoken_name(spoken_name: str | None) -> str | None:
    """The name Alexa should also know the printer by: spaces collapsed, None when empty.
    Alexa hears words, so it needs a letter or a digit."""
    spoken = " ".join((spoken_name or "").split())
    if not spoken:
        return None
    if len(spoken) > MAX_PRINTER_NAME:
        raise Invalid(f"Spoken names can be at most {MAX_PRINTER_NAME} characters.", field="spoken_name",
                      code="invalid_spoken_name")
    if not any(ch.isalnum() for ch in spoken):
        raise Invalid("A spoken name needs words Alexa can hear: letters or digits.", field="spoken_name",
                      code="invalid_spoken_name")
    return spoken


async def rename_printer(herald: Herald, user: User, printer_id: str, name: str,
                         spoken_name: str | None = None, *, set_spoken_name: bool = False) -> Printer:
    """A new name and, with ``set_spoken_name``, a new spoken name (empty clears it)."""
    printer = await owned_printer(user, printer_id)
    name = clean_printer_name(name)
    changes: dict[str, Any] = {"name": name, "changed_at": herald.clock.now()}
    if set_spoken_name:
        changes["spoken_name"] = clean_spoken_name(spoken_name)
    await shielded(Printer.filter(id=printer.id).update(**changes))
    printer_state(herald).forget(printer.id)
    printer.name = name
    if set_spoken_name:
        printer.spoken_name = changes["spoken_name"]
    tell_printer_changed(herald, printer.id)
    return printer


def tell_printer_changed(herald: Herald, printer_id: str) -> None:
    """Every ``printer_changed`` hook: the printer's name or plugin version changed."""
    for hook in herald.hooks.printer_changed:
        try:
            hook(printer_id)
        except Exception:
            log.exception("printer_changed hook %r failed", hook)


async def rotate_key(herald: Herald, user: User, printer_id: str) -> NewKey:
    """A new key for the printer (also relinks an unlinked one); the old key stops working."""
    printer = await owned_printer(user, printer_id)
    key = new_token(PRINTER_KEY_PREFIX)
    now = herald.clock.now()
    await shielded(Printer.filter(id=printer.id).update(
        key_hash=token_hash(key), linked_at=now, changed_at=now))
    printer_state(herald).forget(printer.id)
    printer.key_hash = token_hash(key)
    return NewKey(printer=printer, key=key)


async def unlink_printer(herald: Herald, printer_id: str) -> None:
    """The plugin's "Unlink": the key stops working, the printer stays in the owner's list."""
    for hook in herald.hooks.printers_ending:
        await hook([printer_id])
    await shielded(Printer.filter(id=printer_id).update(
        key_hash=None, online=False, changed_at=herald.clock.now()))
    printer_state(herald).forget(printer_id)
    printer_state(herald).coming_online.discard(printer_id)


async def remove_printer(herald: Herald, user: User, printer_id: str) -> None:
    """Delete the printer with its status, events, jobs and chart."""
    printer = await owned_printer(user, printer_id)
    await delete_printers(herald, [printer.id])


async def delete_printers_of(herald: Herald, user_id: int) -> None:
    """A users_ending hook: the user's printers go as a removal takes them (their tunnels, apps'
    OctoPrint keys, Home Assistant's entities and snapshot files end with them), before the cascade."""
    ids = await Printer.filter(owner_id=user_id).values_list("id", flat=True)
    await delete_printers(herald, [str(i) for i in ids])


async def delete_printers(herald: Herald, printer_ids: list[str]) -> None:
    from appliance.printers.events import snapshot_paths_of
    from appliance.printers.pictures import remove_pictures

    if not printer_ids:
        return
    for hook in herald.hooks.printers_ending:
        await hook(list(printer_ids))
    paths = await snapshot_paths_of(printer_ids)
    await shielded(Printer.filter(id__in=printer_ids).delete())
    state = printer_state(herald)
    for printer_id in printer_ids:
        state.forget(printer_id)
        state.live.pop(printer_id, None)
        state.dirty.discard(printer_id)
    for path in paths:
        _unlink_quietly(herald.settings.data_path / path)
    for printer_id in printer_ids:
        remove_pictures(herald, printer_id)


def _unlink_quietly(path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)
