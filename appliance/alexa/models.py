"""Alexa accounts Herald has heard from: whom to notify, where, and whether they agreed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from appliance.accounts.models import User
    from appliance.printers.models import Printer


class AlexaAccount(Model):
    """An Amazon account that asked Herald's skill something, as the Herald user it was
    answered for. ``notify`` is the Herald user's opt-in, ``subscribed`` Alexa's own
    notification permission (granted in the Alexa app, reported by a skill event)."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "herald.User", related_name="alexa_accounts", on_delete=fields.CASCADE
    )
    user_id: int
    alexa_user_id = fields.CharField(max_length=512, unique=True)  # context.System.user.userId
    api_endpoint = fields.CharField(max_length=200)  # context.System.apiEndpoint: the user's region
    notify = fields.BooleanField(default=False)
    subscribed = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "alexa_accounts"
        indexes = (("user_id",),)


class AlexaReminder(Model):
    """An Alexa reminder Herald set for "tell me when my print is done": the Amazon account
    it belongs to, the printer and job it is about, Amazon's ``alertToken`` and the finish it
    is set for, so status pushes can move it and a failed or cancelled print can remove it."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "herald.User", related_name="alexa_reminders", on_delete=fields.CASCADE
    )
    user_id: int
    alexa_user_id = fields.CharField(max_length=512)
    api_endpoint = fields.CharField(max_length=200)
    printer: fields.ForeignKeyRelation[Printer] = fields.ForeignKeyField(
        "herald.Printer", related_name="alexa_reminders", on_delete=fields.CASCADE
    )
    printer_id: str
    job = fields.CharField(max_length=255, default="")  # the file being printed
    alert_token = fields.CharField(max_length=512)
    finish_at = fields.DatetimeField()
    time_zone = fields.CharField(max_length=64, default="UTC")
    locale = fields.CharField(max_length=16, default="en-US")
    created_at = fields.DatetimeField(auto_now_add=True)
    # Keeping Alexa's reminder in step, from whichever process hears of a change: ``revision``
    # counts the changes wanted (a new finish in ``want_finish``, or ``remove``), and
    # ``applied_revision`` the last one Alexa has. A process works on the reminder only while it
    # holds the row's lease (``locked_by`` until ``locked_until``, taken in one UPDATE).
    want_finish = fields.DatetimeField(null=True)
    # When the printer reported the estimate behind the newest wish (``want_finish``, or
    # ``finish_at`` before any): pushes reach several processes out of order, and a status older
    # than this one must never move the reminder back (null on rows set before it was kept).
    estimate_seen_at = fields.DatetimeField(null=True)
    remove = fields.BooleanField(default=False)
    revision = fields.IntField(default=0)
    applied_revision = fields.IntField(default=0)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    locked_until = fields.DatetimeField(null=True)
    locked_by = fields.CharField(max_length=80, null=True)
    last_error = fields.CharField(max_length=255, default="")

    class Meta:
        table = "alexa_reminders"
        indexes = (("alexa_user_id",), ("user_id",), ("printer_id",))


class AlexaNotification(Model):
    """One Proactive Events notification to one Amazon account, kept until Alexa accepts it:
    ``status`` pending, in_flight (claimed by ``claimed_by`` until ``locked_until``), delivered
    or failed. ``reference_id`` is the event's referenceId, one per event and account."""

    id = fields.IntField(primary_key=True)
    account: fields.ForeignKeyRelation[AlexaAccount] = fields.ForeignKeyField(
        "herald.AlexaAccount", related_name="notifications", on_delete=fields.CASCADE
    )
    account_id: int
    reference_id = fields.CharField(max_length=100, unique=True)
    api_endpoint = fields.CharField(max_length=200)
    body: fields.JSONField[dict[str, Any]] = fields.JSONField()
    status = fields.CharField(max_length=16, default="pending")
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    locked_until = fields.DatetimeField(null=True)
    claimed_by = fields.CharField(max_length=80, null=True)
    last_error = fields.CharField(max_length=255, default="")
    expires_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)
    delivered_at = fields.DatetimeField(null=True)

    class Meta:
        table = "alexa_notifications"
        indexes = (("account_id",), ("status", "next_attempt_at"))
