"""Alexa accounts Herald has heard from: whom to notify, where, and whether they agreed."""

from __future__ import annotations

from typing import TYPE_CHECKING

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

    class Meta:
        table = "alexa_reminders"
        indexes = (("alexa_user_id",), ("user_id",), ("printer_id",))
