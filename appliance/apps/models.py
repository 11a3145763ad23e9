"""Registered apps, App Connections (one user, one printer, one app) and live links."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from appliance.accounts.models import User
    from appliance.printers.models import Printer
    from appliance.webhooks.models import WebhookTarget


class RegisteredApp(Model):
    """An app an admin allowed to use the portal (or a built-in one an admin turned off)."""

    id = fields.IntField(primary_key=True)
    app_id = fields.CharField(max_length=100, unique=True)  # lower case
    name = fields.CharField(max_length=100)
    logo_url = fields.TextField(default="")
    # The portal redirects only to a returnUrl that starts with one of these.
    return_url_prefixes: fields.JSONField[list[str]] = fields.JSONField(default=list)
    enabled = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "registered_apps"


class AppConnection(Model):
    """What the portal made: an app's access to one printer of one user, with its credentials.

    Every credential is stored as a SHA-256 hash only: the app token, the Basic password and
    the Bearer token were shown once, in the completion redirect.
    """

    id = fields.CharField(max_length=36, primary_key=True)  # the `id` apps store
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "herald.User", related_name="app_connections", on_delete=fields.CASCADE
    )
    user_id: int
    # Null once the printer was removed: the row stays, revoked, so apps hear 604.
    printer: fields.ForeignKeyNullableRelation[Printer] = fields.ForeignKeyField(
        "herald.Printer", related_name="app_connections", null=True, on_delete=fields.SET_NULL
    )
    printer_id: str | None
    printer_name = fields.CharField(max_length=100)  # as it was when connected
    app_id = fields.CharField(max_length=100)
    app_name = fields.CharField(max_length=100)
    host_label = fields.CharField(max_length=40, unique=True)  # app-<random>: the relay host
    app_token_hash = fields.CharField(max_length=64, unique=True)
    bearer_token_hash = fields.CharField(max_length=64, unique=True)
    basic_user = fields.CharField(max_length=64)
    basic_password_hash = fields.CharField(max_length=64)
    octoprint_api_key_app_name = fields.CharField(max_length=60, default="")
    # The OctoPrint application key the plugin minted for the app, sealed with Herald's SecretBox:
    # Herald sends it back to the plugin to revoke it when the connection ends. Empty when none.
    octoprint_api_key_sealed = fields.TextField(default="")
    created_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField(null=True)
    # What the relay moved for this connection (record_relay_use): up is app to OctoPrint.
    bytes_up = fields.BigIntField(default=0)
    bytes_down = fields.BigIntField(default=0)
    revoked_at = fields.DatetimeField(null=True)
    revoked_reason = fields.CharField(max_length=100, default="")
    webhook_target: fields.ForeignKeyNullableRelation[WebhookTarget] = fields.ForeignKeyField(
        "herald.WebhookTarget", related_name="app_connections", null=True, on_delete=fields.SET_NULL
    )
    webhook_target_id: int | None
    webhook_expires_at = fields.DatetimeField(null=True)  # 180 days after it was last set

    class Meta:
        table = "app_connections"
        indexes = (("user_id",), ("printer_id",), ("webhook_target_id",), ("webhook_expires_at",))


class LiveLink(Model):
    """A read-only page of one printer that anyone holding its link may open until it ends."""

    id = fields.IntField(primary_key=True)
    live_id = fields.CharField(max_length=40, unique=True)  # public, names the link in lists
    token_hash = fields.CharField(max_length=64, unique=True)  # the secret part of the URL
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "herald.User", related_name="live_links", on_delete=fields.CASCADE
    )
    owner_id: int
    printer: fields.ForeignKeyRelation[Printer] = fields.ForeignKeyField(
        "herald.Printer", related_name="live_links", on_delete=fields.CASCADE
    )
    printer_id: str
    connection: fields.ForeignKeyNullableRelation[AppConnection] = fields.ForeignKeyField(
        "herald.AppConnection", related_name="live_links", null=True, on_delete=fields.SET_NULL
    )
    connection_id: str | None
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    end_when_print_complete = fields.BooleanField(default=False)
    ended_at = fields.DatetimeField(null=True)  # revoked, or the print it watched ended
    ended_reason = fields.CharField(max_length=40, default="")
    extra: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "live_links"
        indexes = (("owner_id",), ("printer_id",), ("connection_id",))


class OwnerRelayAccess(Model):
    """The printer owner's own way to OctoPrint through the relay, from the printer page.

    One per printer: its host label names the relayed origin (own-<random> under the relay's
    host), never an origin of Herald's pages. Made on the first "Open OctoPrint".
    """

    id = fields.CharField(max_length=40, primary_key=True)  # owner-<hex>
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "herald.User", related_name="owner_relay_accesses", on_delete=fields.CASCADE
    )
    user_id: int
    printer: fields.ForeignKeyRelation[Printer] = fields.ForeignKeyField(
        "herald.Printer", related_name="owner_relay_accesses", on_delete=fields.CASCADE
    )
    printer_id: str
    host_label = fields.CharField(max_length=40, unique=True)  # own-<random>
    created_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField(null=True)
    bytes_up = fields.BigIntField(default=0)
    bytes_down = fields.BigIntField(default=0)

    class Meta:
        table = "owner_relay_accesses"
        unique_together = (("user_id", "printer_id"),)
        indexes = (("printer_id",),)  # a printer's end finds its accesses


class RelayHandoff(Model):
    """A one-time code that takes the owner from Herald's page to the relayed origin.

    Stored as a SHA-256 hash, valid for seconds, used at most once: the relayed origin
    exchanges it for a cookie of its own host.
    """

    id = fields.IntField(primary_key=True)
    code_hash = fields.CharField(max_length=64, unique=True)
    access: fields.ForeignKeyRelation[OwnerRelayAccess] = fields.ForeignKeyField(
        "herald.OwnerRelayAccess", related_name="handoffs", on_delete=fields.CASCADE
    )
    access_id: str
    user_id = fields.IntField()
    # The Herald login session that clicked "Open OctoPrint": the relayed session ends with it.
    session_id = fields.IntField(null=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "relay_handoffs"
        indexes = (("expires_at",), ("access_id",))
