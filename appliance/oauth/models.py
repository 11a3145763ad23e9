"""The OAuth 2.0 authorization server: registered clients and authorization codes.

Tokens it issues are ``AccessToken`` rows (see accounts.py) with ``client_id`` set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from appliance.accounts.models import User


class OAuthClient(Model):
    """An app allowed to ask users for access (Alexa account linking, later third-party apps).

    The secret is encrypted with the data directory's key, not hashed, because
    the setup page shows it again. Redirect URIs match exactly.
    """

    id = fields.IntField(primary_key=True)
    client_id = fields.CharField(max_length=100, unique=True)
    name = fields.CharField(max_length=100)
    kind = fields.CharField(max_length=20, default="app")  # "alexa" | "app"
    secret_encrypted = fields.TextField()
    redirect_uris: fields.JSONField[list[str]] = fields.JSONField(default=list)
    scopes = fields.CharField(max_length=255, default="printers:read")
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "herald.User", related_name="oauth_clients", null=True, on_delete=fields.SET_NULL
    )
    owner_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "oauth_clients"
        indexes = (("owner_id",),)


class AuthorizationCode(Model):
    """A single-use, short-lived code from /oauth/authorize (stored as its SHA-256 hash)."""

    id = fields.IntField(primary_key=True)
    code_hash = fields.CharField(max_length=64, unique=True)
    client_id = fields.CharField(max_length=100)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "herald.User", related_name="authorization_codes", on_delete=fields.CASCADE
    )
    user_id: int
    redirect_uri = fields.CharField(max_length=500, default="")
    scope = fields.CharField(max_length=255, default="")
    code_challenge = fields.CharField(max_length=128, null=True)
    code_challenge_method = fields.CharField(max_length=10, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "oauth_authorization_codes"
        indexes = (("user_id",),)
