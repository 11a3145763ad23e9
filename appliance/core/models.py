"""What every area shares in the database: runtime settings, leases that let one process run a
periodic job, shared rate limits."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Lease(Model):
    """Held by one process at a time until expires_at (see appliance.core.leases)."""

    name = fields.CharField(max_length=64, primary_key=True)
    holder = fields.CharField(max_length=64)
    expires_at = fields.DatetimeField()
    last_run_at = fields.DatetimeField(null=True)

    class Meta:
        table = "leases"


class RateLimitWindow(Model):
    """The hits of one rate-limit key still in its window, shared by all processes on PostgreSQL.

    Keys are stored as keyed hashes only (see appliance.core.ratelimit), never in the clear.
    """

    key_hash = fields.CharField(max_length=64, primary_key=True)
    # The keyed hash of the key's group (its text up to its last separator), for reset_prefix.
    group_hash = fields.CharField(max_length=64, null=True, db_index=True)
    # Epoch seconds of the hits in the window.
    hits: fields.JSONField[list[float]] = fields.JSONField()
    expires_at = fields.FloatField(db_index=True)  # epoch seconds when the newest hit leaves it

    class Meta:
        table = "rate_limits"


class RuntimeSetting(Model):
    """A setting an admin changed in the web UI (secret values are encrypted)."""

    name = fields.CharField(max_length=64, primary_key=True)
    value = fields.TextField()
    encrypted = fields.BooleanField(default=False)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "runtime_settings"
