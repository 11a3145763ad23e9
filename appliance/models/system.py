"""Coordination between processes: leases that let one process run a periodic job."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Lease(Model):
    """Held by one process at a time until expires_at (see appliance.services.leases)."""

    name = fields.CharField(max_length=64, primary_key=True)
    holder = fields.CharField(max_length=64)
    expires_at = fields.DatetimeField()
    last_run_at = fields.DatetimeField(null=True)

    class Meta:
        table = "leases"
