"""Webhook targets, their queued deliveries (one row per event and target) and every attempt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from appliance.accounts.models import User
    from appliance.printers.models import Event


class WebhookTarget(Model):
    """Where and how a user's webhook is sent. Secrets are stored encrypted (SecretBox)."""

    id = fields.IntField(primary_key=True)
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "herald.User", related_name="webhook_targets", on_delete=fields.CASCADE
    )
    owner_id: int
    name = fields.CharField(max_length=100)
    preset = fields.CharField(max_length=32, default="")
    url = fields.TextField()  # a template: @params are URL-encoded into it
    method = fields.CharField(max_length=8, default="POST")
    content_type = fields.CharField(max_length=8, default="json")  # json | form
    headers = fields.TextField(default="{}")  # JSON template text, kept as the user wrote it
    body = fields.TextField(default="{}")  # JSON template text
    events: fields.JSONField[list[str]] = fields.JSONField(default=list)  # types that trigger it
    # Empty: every printer of the owner.
    printer_ids: fields.JSONField[list[str]] = fields.JSONField(default=list)
    progress_step = fields.IntField(default=10)  # percent
    # Event type -> the @message text for it (a template), when not the default.
    messages: fields.JSONField[dict[str, str]] = fields.JSONField(default=dict)
    device_identifier = fields.CharField(max_length=100, default="")
    api_secret = fields.TextField(default="")  # encrypted, empty when unset
    signing_secret = fields.TextField()  # encrypted whsec_...
    previous_signing_secret = fields.TextField(default="")  # encrypted, during a rotation
    previous_secret_expires_at = fields.DatetimeField(null=True)
    oauth_enabled = fields.BooleanField(default=False)
    oauth_url = fields.TextField(default="")
    oauth_method = fields.CharField(max_length=8, default="POST")
    oauth_content_type = fields.CharField(max_length=8, default="json")
    oauth_headers = fields.TextField(default="{}")
    oauth_body = fields.TextField(default="")  # encrypted JSON template: it usually holds credentials
    oauth_token = fields.TextField(default="")  # encrypted JSON of the cached response
    oauth_expires_at = fields.DatetimeField(null=True)
    enabled = fields.BooleanField(default=True)
    disabled_reason = fields.TextField(default="")  # why Herald disabled it, shown on the dashboard
    disabled_at = fields.DatetimeField(null=True)
    failing_since = fields.DatetimeField(null=True)  # start of the current run of failures
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "webhook_targets"
        indexes = (("owner_id",),)


class Delivery(Model):
    """One event for one target, its request rendered when the event arrived and frozen (secrets sealed)."""

    id = fields.BigIntField(primary_key=True)
    target: fields.ForeignKeyRelation[WebhookTarget] = fields.ForeignKeyField(
        "herald.WebhookTarget", related_name="deliveries", on_delete=fields.CASCADE
    )
    target_id: int
    event: fields.ForeignKeyNullableRelation[Event] = fields.ForeignKeyField(
        "herald.Event", related_name="deliveries", null=True, on_delete=fields.SET_NULL
    )
    event_id: int | None
    printer_id = fields.CharField(max_length=36, null=True)
    event_type = fields.CharField(max_length=40)
    sequence = fields.BigIntField(default=0)
    occurred_at = fields.DatetimeField()
    accepted_at = fields.DatetimeField()
    webhook_id = fields.CharField(max_length=64)  # the same on every attempt (and on a resend)
    url = fields.TextField()
    method = fields.CharField(max_length=8)
    headers: fields.JSONField[dict[str, str]] = fields.JSONField(default=dict)
    body_kind = fields.CharField(max_length=10)  # json | form | query | multipart
    body: fields.JSONField[Any] = fields.JSONField(null=True)  # the rendered body
    # url, headers and body above are shown with their secrets redacted; the request as sent is
    # this (encrypted JSON), empty when it held no secret (appliance.webhooks.redact).
    sealed = fields.TextField(default="")
    snapshot_key = fields.CharField(max_length=100, default="")  # multipart field for the JPEG
    snapshot_path = fields.CharField(max_length=255, null=True)
    is_test = fields.BooleanField(default=False)
    resend_of = fields.BigIntField(null=True)
    status = fields.CharField(max_length=10, default="pending")  # pending in_flight delivered failed
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    locked_until = fields.DatetimeField(null=True)
    claimed_by = fields.CharField(max_length=80, null=True)
    last_error = fields.TextField(default="")
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "webhook_deliveries"
        indexes = (("status", "next_attempt_at"), ("target_id", "status"), ("event_id",))


class DeliveryAttempt(Model):
    """One try at sending a delivery: when, the answer (status, latency, first 1 KiB) or the error."""

    id = fields.BigIntField(primary_key=True)
    delivery: fields.ForeignKeyRelation[Delivery] = fields.ForeignKeyField(
        "herald.Delivery", related_name="attempt_log", on_delete=fields.CASCADE
    )
    delivery_id: int
    started_at = fields.DatetimeField()
    status_code = fields.IntField(null=True)
    latency_ms = fields.IntField(default=0)
    response = fields.TextField(default="")  # first 1 KiB of the response body
    error = fields.TextField(default="")

    class Meta:
        table = "webhook_attempts"
        indexes = (("delivery_id",),)
