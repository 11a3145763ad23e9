"""Which Herald process holds a printer's tunnel, where several processes share PostgreSQL."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class RelayHolder(Model):
    """A printer whose tunnel one process holds, and that process's internal relay address."""

    printer_id = fields.CharField(max_length=36, primary_key=True)
    address = fields.CharField(max_length=64)  # 127.0.0.1:<port> of the holder's internal listener
    holder = fields.CharField(max_length=64)  # the holding process's name (core/leases.new_holder)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "relay_holders"
