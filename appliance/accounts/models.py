"""Accounts: users, their login sessions, mail tokens, invites and access tokens."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class User(Model):
    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)  # stored lower-cased
    password_hash = fields.CharField(max_length=255)
    is_admin = fields.BooleanField(default=False)
    email_verified_at = fields.DatetimeField(null=True)
    time_zone = fields.CharField(max_length=64, default="UTC")
    # False until the user picks a zone in Account: till then login adopts the browser's zone.
    time_zone_chosen = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "users"


class LoginSession(Model):
    """A browser login. The cookie holds a random token, and only its SHA-256 is stored."""

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "herald.User", related_name="sessions", on_delete=fields.CASCADE
    )
    user_id: int
    csrf_token = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    last_seen_at = fields.DatetimeField(null=True)
    user_agent = fields.CharField(max_length=255, default="")

    class Meta:
        table = "login_sessions"
        indexes = (("user_id",),)


class EmailToken(Model):
    """Single-use, expiring token mailed to a user (verify address, reset password)."""

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    purpose = fields.CharField(max_length=16)  # "verify" | "reset"
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "herald.User", related_name="email_tokens", on_delete=fields.CASCADE
    )
    user_id: int
    email = fields.CharField(max_length=254)  # the address the token was sent to
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "email_tokens"
        indexes = (("user_id",),)


class Invite(Model):
    """An admin's single-use invite link for signup mode ``invite``."""

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    note = fields.CharField(max_length=200, default="")
    created_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "herald.User", related_name="invites", null=True, on_delete=fields.SET_NULL
    )
    created_by_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    used_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "herald.User", related_name="used_invites", null=True, on_delete=fields.SET_NULL
    )
    used_by_id: int | None

    class Meta:
        table = "invites"
        indexes = (("created_by_id",), ("used_by_id",))


class AccessToken(Model):
    """A ``hat_`` bearer token: a personal token, or one issued by the OAuth server.

    ``client_id`` is empty for personal tokens. ``refresh_token_hash`` is set for
    OAuth grants that may be refreshed. ``grant_id`` is shared by every token
    descended from one authorization (each refresh rotates into a new row), so
    that a stolen refresh token's reuse ends exactly that chain.
    """

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "herald.User", related_name="access_tokens", on_delete=fields.CASCADE
    )
    user_id: int
    name = fields.CharField(max_length=100, default="")
    scope = fields.CharField(max_length=255, default="printers:read")
    client_id = fields.CharField(max_length=100, default="")
    refresh_token_hash = fields.CharField(max_length=64, null=True, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField(null=True)
    refresh_expires_at = fields.DatetimeField(null=True)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    grant_id = fields.CharField(max_length=36, null=True)

    class Meta:
        table = "access_tokens"
        indexes = (("user_id", "client_id"), ("grant_id",))


class SetupToken(Model):
    """The first-run setup link's token, until the first admin exists.

    Stored as a SHA-256 hash (checked on use) and encrypted with the data
    directory's key, so the same link can be printed at every start.
    """

    name = fields.CharField(max_length=32, primary_key=True)  # always "first_admin"
    token_hash = fields.CharField(max_length=64, unique=True)
    token_encrypted = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "setup_tokens"
