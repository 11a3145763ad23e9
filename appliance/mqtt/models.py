"""The owner's choice whether a printer is published to Home Assistant."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from appliance.printers.models import Printer


class PublishChoice(Model):
    """An owner's choice to publish a printer to the MQTT broker or not (no row: the default)."""

    id = fields.IntField(primary_key=True)
    printer: fields.OneToOneRelation[Printer] = fields.OneToOneField(
        "herald.Printer", related_name="home_assistant_choice", on_delete=fields.CASCADE
    )
    printer_id: str
    publish = fields.BooleanField()
    changed_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "home_assistant_printers"
