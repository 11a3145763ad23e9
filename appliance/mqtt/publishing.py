"""Whose printers are published to Home Assistant, and the listeners that queue what to publish.

Who: the owner's choice per printer (the toggle on the printer page, a ``PublishChoice`` row). Without
a choice, an admin's printers are published and other users' are not: on a shared instance the
broker (and so the Home Assistant on it) is the admin's, and a user's printers reach it only when
that user says so.

The listeners (wired by create_app) only put messages in the outbox -- no database, no I/O -- so
status ingest and event recording never wait for the broker. Which printers are published is kept
in memory (``published``) and refreshed by the MQTT task: every minute, at once when a printer
Herald has not seen before reports, and when an owner flips the toggle.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from appliance.core.db import shielded
from appliance.core.errors import NotFound
from appliance.core.herald import Herald
from appliance.core.runtime_settings import effective_all
from appliance.mqtt import discovery
from appliance.mqtt.discovery import Message, PublishedPrinter, Topics
from appliance.mqtt.models import PublishChoice
from appliance.mqtt.outbox import Outbox
from appliance.printers.models import Printer
from appliance.printers.state import printer_state
from appliance.printers.views import build_view, printer_view, relay_consent

log = logging.getLogger(__name__)

REFRESH_EVERY = 60.0


@dataclass(frozen=True)
class BrokerConfig:
    host: str
    port: int
    tls: bool
    username: str
    password: str
    discovery_prefix: str
    base_topic: str

    @property
    def topics(self) -> Topics:
        return Topics(discovery_prefix=self.discovery_prefix, base=self.base_topic)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}{' (TLS)' if self.tls else ''}"


async def broker_config(herald: Herald) -> BrokerConfig:
    """The broker settings in force (environment, else Admin > Home Assistant, else defaults)."""
    values = await effective_all(herald)
    return BrokerConfig(host=values["mqtt_host"], port=values["mqtt_port"], tls=values["mqtt_tls"] == "tls",
                        username=values["mqtt_username"], password=values["mqtt_password"],
                        discovery_prefix=values["mqtt_discovery_prefix"], base_topic=values["mqtt_base_topic"])


def published_by_default(owner_is_admin: bool) -> bool:
    return owner_is_admin


async def publish_choice(printer: Printer) -> bool:
    """Whether the printer is published: its owner's choice, else the default."""
    choice = await PublishChoice.get_or_none(printer_id=printer.id)
    if choice is not None:
        return choice.publish
    owner = await printer.owner
    return published_by_default(owner.is_admin)


async def set_publish_choice(herald: Herald, printer: Printer, publish: bool) -> None:
    """The owner's toggle. Home Assistant hears of it within moments (the MQTT task refreshes)."""
    if await Printer.get_or_none(id=printer.id) is None:
        raise NotFound("No such printer.")
    await shielded(PublishChoice.update_or_create(printer_id=printer.id, defaults={"publish": publish}))
    publisher = herald.part_or_none(HomeAssistantPublisher)
    if publisher is not None:
        publisher.refresh_wanted.set()


class HomeAssistantPublisher:
    """What this process publishes: the outbox, the published printers, the topics in force."""

    def __init__(self, herald: Herald) -> None:
        self.herald = herald
        self.outbox = Outbox(int(herald.settings.mqtt_queue_limit))
        self.topics: Topics | None = None  # None while MQTT is off: the listeners then do nothing
        self.published: dict[str, PublishedPrinter] = {}
        self.unpublished: set[str] = set()
        self.refresh_wanted = asyncio.Event()
        self.plugin_control: dict[str, bool] = {}  # each printer's last relay.allow_control (buttons)

    # --- listeners (create_app wires them; they never wait) -------------------------------

    def on_status(self, printer_id: str, view: dict[str, Any]) -> None:
        topics = self.topics
        if topics is None:
            return
        printer = self.published.get(printer_id)
        if printer is None:
            if printer_id not in self.unpublished:
                self.refresh_wanted.set()  # a printer not seen before: maybe published
            return
        plugin_control = relay_consent(view)["allow_control"]
        if self.plugin_control.get(printer_id, plugin_control) != plugin_control:
            self.refresh_wanted.set()  # the plugin's consent to control changed: the buttons come or go
        self.plugin_control[printer_id] = plugin_control
        reported = discovery.temperature_keys(view.get("status"))
        if not set(reported) <= set(printer.temperatures):  # a new tool or a chamber: its entities
            printer = replace(printer, temperatures=tuple(dict.fromkeys(printer.temperatures + reported)))
            self.published[printer_id] = printer
            self.outbox.put_all(discovery.entity_configs(printer, topics, self.herald.settings.base_url))
        self.outbox.put_all(discovery.state_message(view, printer, topics))

    async def on_event(self, event: Any, _printer: Any, _connection: Any) -> None:
        topics = self.topics
        printer = self.published.get(event.printer_id)
        if topics is None or printer is None:
            return
        if event.type in ("printer.offline", "printer.online"):
            live = printer_state(self.herald).live.get(printer.id)
            view = build_view(printer_id=printer.id, name=printer.name, linked=True,
                              online=event.type == "printer.online", last_seen=live.seen_at if live else None,
                              status=live.status if live else None)
            self.outbox.put_all(discovery.state_message(view, printer, topics))
        message = discovery.event_message(event.type, printer.id, event.payload or {}, event.occurred_at, topics)
        if message is not None:
            self.outbox.put(message)

    def on_printer_changed(self, _printer_id: str) -> None:
        """Renamed, or its plugin verified (maybe a new version): publish its device afresh."""
        if self.topics is not None:
            self.refresh_wanted.set()

    async def on_printers_ending(self, printer_ids: list[str]) -> None:
        """Unlinked or about to be removed: look again shortly (a removed printer's entities go)."""
        asyncio.get_running_loop().call_later(1.0, self.refresh_wanted.set)

    # --- what the MQTT task calls ---------------------------------------------------------

    async def load(self) -> dict[str, PublishedPrinter]:
        """The printers to publish now, from the database (and this process's fresher status)."""
        choices = dict(await PublishChoice.all().values_list("printer_id", "publish"))
        rows = await Printer.all().values("id", "name", "plugin_version", "status", "owner__is_admin",
                                          "allow_control")
        live = printer_state(self.herald).live
        wanted: dict[str, PublishedPrinter] = {}
        self.unpublished = set()
        for row in rows:
            publish = choices.get(row["id"])
            if not (publish if publish is not None else published_by_default(bool(row["owner__is_admin"]))):
                self.unpublished.add(row["id"])
                continue
            status = live[row["id"]].status if row["id"] in live else row["status"]
            before = self.published.get(row["id"])
            temps = discovery.temperature_keys(status)
            if before is not None:
                temps = tuple(dict.fromkeys(before.temperatures + temps))
            self.plugin_control[row["id"]] = relay_consent({"status": status})["allow_control"]
            control = bool(row["allow_control"]) and self.plugin_control[row["id"]]
            wanted[row["id"]] = PublishedPrinter(id=row["id"], name=row["name"], plugin_version=row["plugin_version"],
                                                 temperatures=temps, control=control)
        return wanted

    async def everything(self, topics: Topics) -> list[Message]:
        """Every published printer's configs, triggers and state: after (re)connecting or an overflow."""
        self.published = await self.load()
        return await self._publish_messages(list(self.published.values()), topics)

    async def refresh(self, topics: Topics) -> list[Message]:
        """What changed since the last look: new and renamed printers, and removed ones."""
        wanted = await self.load()
        messages: list[Message] = []
        for printer_id, printer in self.published.items():
            if printer_id not in wanted:
                messages += discovery.removal(printer_id, printer.temperatures, topics)
        changed = [printer for printer_id, printer in wanted.items() if self.published.get(printer_id) != printer]
        for printer in changed:
            before = self.published.get(printer.id)
            if before is not None and before.control and not printer.control:
                messages += discovery.button_removal(printer.id, topics)
        self.published = wanted
        messages += await self._publish_messages(changed, topics)
        return messages

    async def _publish_messages(self, printers: list[PublishedPrinter], topics: Topics) -> list[Message]:
        base_url = self.herald.settings.base_url
        rows = {row.id: row for row in await Printer.filter(id__in=[p.id for p in printers])} if printers else {}
        messages: list[Message] = []
        for printer in printers:
            messages += discovery.entity_configs(printer, topics, base_url)
            messages += discovery.trigger_configs(printer, topics, base_url)
            if printer.id in rows:
                messages += discovery.state_message(printer_view(self.herald, rows[printer.id]), printer, topics)
        return messages

    def index(self) -> dict[str, list[str]]:
        """What the retained index topic holds: each published printer's temperature entities."""
        return {printer_id: list(printer.temperatures) for printer_id, printer in self.published.items()}
