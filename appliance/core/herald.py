"""The application object: everything one running Herald holds, typed.

``create_app`` (appliance/app.py) builds one ``Herald`` per app and is the only place
that wires areas together: it hands each area the parts it needs, adds the areas'
listeners to ``hooks`` and their background jobs to ``tasks``. Rules take the
``Herald`` (or just the part they need) as an argument; routes reach it with
``current_herald()``.

An area's own long-lived state (the printers' status store, the webhook worker, the
Alexa request verifier, ...) is a *part*: an object of the area's own class, given to
``provide`` by create_app and found again by its class with ``part``. The class is the
key, so mypy knows what comes back and no string names a part.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from quart import Quart, current_app

from appliance.core.clock import Clock
from appliance.core.ratelimit import RateLimiterBase
from appliance.core.secrets import SecretBox
from appliance.core.settings import Settings
from appliance.core.tasks import BackgroundTasks

if TYPE_CHECKING:
    from tortoise.backends.base.client import BaseDBAsyncClient

T = TypeVar("T")

# listener(event, printer, connection): awaited inside the transaction that stores a
# printer event; it writes with using_db=connection (appliance/printers/events.py).
EventListener = Callable[[Any, Any, "BaseDBAsyncClient"], Awaitable[None]]
# listener(printer_id, printer_view): called (not awaited) after a status is accepted.
StatusListener = Callable[[str, dict[str, Any]], None]
# hook(printer_ids): awaited after a status flush wrote these printers.
FlushedHook = Callable[[list[str]], Awaitable[None]]
# hook(printer_ids): awaited when printers are unlinked or are about to be removed.
PrintersEnding = Callable[[list[str]], Awaitable[None]]
# provider(herald) -> [(label, value)]: rows an area adds to Admin > System.
SystemRows = Callable[["Herald"], Awaitable[list[tuple[str, str]]]]


@dataclass
class Hooks:
    """Where areas hear about each other's work, without importing each other's state."""

    event_listeners: list[EventListener] = field(default_factory=list)
    status_listeners: list[StatusListener] = field(default_factory=list)
    status_flushed: list[FlushedHook] = field(default_factory=list)
    system_rows: list[SystemRows] = field(default_factory=list)
    # Awaited when printers are unlinked, and before printers are removed: what was granted
    # on a printer (App Connections) ends there.
    printers_ending: list[PrintersEnding] = field(default_factory=list)
    # Called (not awaited) with a printer's id when what describes it changed in this process: its
    # name (the owner renamed it) or its plugin's version (the plugin verified). MQTT republishes.
    printer_changed: list[Callable[[str], None]] = field(default_factory=list)
    # Awaited with a user's id just before the user is deleted: what they own that lives outside
    # the database (their printers' tunnels, OctoPrint keys minted for their apps, Home Assistant's
    # retained entities) ends first, as when they remove each printer; the foreign keys cascade after.
    users_ending: list[Callable[[int], Awaitable[None]]] = field(default_factory=list)
    # Awaited when App Connections end (revoked, their printer's end, their user deleted): what
    # runs on them (relayed streams) ends there.
    connections_ending: list[Callable[[list[str]], Awaitable[None]]] = field(default_factory=list)
    # Called as soon as the server is told to stop, before it waits for open
    # connections: long-lived responses (the dashboard's event streams) end there.
    stopping: list[Callable[[], None]] = field(default_factory=list)


@dataclass
class Herald:
    """One app instance's long-lived state, at ``app.extensions["herald"]``."""

    settings: Settings
    clock: Clock
    secret_box: SecretBox
    tasks: BackgroundTasks
    rate_limiter: RateLimiterBase
    hooks: Hooks = field(default_factory=Hooks)
    tune_gc: bool = False  # set by server entry points (app.tune_gc_for_serving)
    _parts: dict[type, object] = field(default_factory=dict, repr=False)

    def provide(self, part: T) -> T:
        """Keep an area's part for the app's life; one per class."""
        kind = type(part)
        if kind in self._parts:
            raise RuntimeError(f"{kind.__name__} was provided twice")
        self._parts[kind] = part
        return part

    def part(self, kind: type[T]) -> T:
        """The part of this class that create_app provided."""
        try:
            found = self._parts[kind]
        except KeyError:
            raise LookupError(f"create_app provided no {kind.__name__}") from None
        assert isinstance(found, kind)
        return found

    def part_or_none(self, kind: type[T]) -> T | None:
        found = self._parts.get(kind)
        return found if isinstance(found, kind) else None


HERALD_KEY = "herald"


def herald_of(app: Quart) -> Herald:
    herald = app.extensions[HERALD_KEY]
    assert isinstance(herald, Herald)
    return herald


def current_herald() -> Herald:
    """The Herald of the app serving the current request (or app context)."""
    return herald_of(current_app)
