"""Printers, link requests, the latest status, stored events and job history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from appliance.accounts.models import User


class Printer(Model):
    id = fields.CharField(max_length=36, primary_key=True)  # uuid4 text
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "herald.User", related_name="printers", on_delete=fields.CASCADE
    )
    owner_id: int
    name = fields.CharField(max_length=100)
    # What the owner wants Alexa to call the printer ("the big one" for "MK4-01"), or null.
    spoken_name = fields.CharField(max_length=100, null=True)
    key_hash = fields.CharField(max_length=64, null=True, unique=True)  # null = unlinked
    created_at = fields.DatetimeField(auto_now_add=True)
    linked_at = fields.DatetimeField(null=True)
    last_seen_at = fields.DatetimeField(null=True)
    # The last status pushed, as the contract defines it.
    status: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    status_updated_at = fields.DatetimeField(null=True)
    online = fields.BooleanField(default=False)  # as last recorded by offline detection
    purge_warned_at = fields.DatetimeField(null=True)
    event_sequence = fields.BigIntField(default=0)  # last per-printer event sequence number
    plugin_version = fields.CharField(max_length=40, null=True)  # as the plugin's last verify said
    # The owner's yes, in Herald, to pause, resume and cancel from Herald (relay/control.py), on top
    # of the plugin's own relay.allow_control at the printer. Off by default.
    allow_control = fields.BooleanField(default=False)
    # When the key, name or online flag last changed: every process reloads the
    # printers it has cached that changed since its last look (see services.printers).
    changed_at = fields.DatetimeField(null=True, db_index=True)

    class Meta:
        table = "printers"
        indexes = (("owner_id", "name"),)


class LinkRequest(Model):
    """An RFC 8628 device authorization started by the plugin (``POST /api/v1/link``)."""

    id = fields.IntField(primary_key=True)
    device_code_hash = fields.CharField(max_length=64, unique=True)
    user_code = fields.CharField(max_length=16, unique=True)  # normalised: no dash, upper case
    printer_name = fields.CharField(max_length=100)
    client_address = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    last_polled_at = fields.DatetimeField(null=True)
    approved_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "herald.User", related_name="link_requests", null=True, on_delete=fields.CASCADE
    )
    approved_by_id: int | None
    denied = fields.BooleanField(default=False)
    printer: fields.ForeignKeyNullableRelation[Printer] = fields.ForeignKeyField(
        "herald.Printer", related_name="link_requests", null=True, on_delete=fields.CASCADE
    )
    printer_id: str | None
    completed_at = fields.DatetimeField(null=True)  # the key was handed to the plugin

    class Meta:
        table = "link_requests"
        indexes = (("printer_id",), ("approved_by_id",))


class Event(Model):
    """A printer event as posted by the plugin, or recorded by Herald (online/offline)."""

    id = fields.BigIntField(primary_key=True)
    printer: fields.ForeignKeyRelation[Printer] = fields.ForeignKeyField(
        "herald.Printer", related_name="events", on_delete=fields.CASCADE
    )
    printer_id: str
    event_id = fields.CharField(max_length=64)  # the plugin's id, unique per printer
    type = fields.CharField(max_length=40)
    sequence = fields.BigIntField()  # per-printer arrival order
    occurred_at = fields.DatetimeField()
    received_at = fields.DatetimeField()
    payload: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    printer_data: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    snapshot_path = fields.CharField(max_length=255, null=True)

    class Meta:
        table = "events"
        # (printer_id, sequence): a printer's events newest first, a page at a time (the read API).
        indexes = (("received_at",), ("printer_id", "sequence"))
        unique_together = (("printer", "event_id"),)


class Job(Model):
    """One print job in a printer's history (the last 50 are kept)."""

    id = fields.BigIntField(primary_key=True)
    printer: fields.ForeignKeyRelation[Printer] = fields.ForeignKeyField(
        "herald.Printer", related_name="jobs", on_delete=fields.CASCADE
    )
    printer_id: str
    file = fields.CharField(max_length=255, null=True)
    started_at = fields.DatetimeField(null=True)
    ended_at = fields.DatetimeField(null=True)
    duration = fields.FloatField(null=True)  # seconds
    result = fields.CharField(max_length=16, null=True)  # completed | failed | cancelled | null while running

    class Meta:
        table = "jobs"
        indexes = (("printer_id", "id"),)


class StatusSample(Model):
    """A downsampled point of a printer's temperatures and progress, for its chart."""

    id = fields.BigIntField(primary_key=True)
    printer: fields.ForeignKeyRelation[Printer] = fields.ForeignKeyField(
        "herald.Printer", related_name="samples", on_delete=fields.CASCADE
    )
    printer_id: str
    taken_at = fields.DatetimeField(db_index=True)
    # {"tool0": {"actual": .., "target": ..}, ...}
    temperatures: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    progress = fields.FloatField(null=True)

    class Meta:
        table = "status_samples"
        indexes = (("printer_id", "taken_at"),)
