"""Personal access tokens: ``hat_`` bearer tokens a user makes for their own scripts."""

from __future__ import annotations

from appliance.accounts.models import AccessToken, User
from appliance.core.clock import Clock
from appliance.core.db import shielded
from appliance.core.errors import Conflict, Invalid, NotAllowed, NotFound
from appliance.core.row_ids import row_id
from appliance.core.secrets import ACCESS_TOKEN_PREFIX, new_token, token_hash

# Every scope a hat_ token can carry, with what it allows: the one list personal tokens
# choose from (the OAuth server offers third-party apps only its own subset, see oauth.SCOPES).
SCOPES = {
    "printers:read": "See your printers and their status",
    "webhooks": "Manage your webhooks: targets, test sends and deliveries",
    "printers:control": "Pause, resume and cancel your printers' prints (where you allowed control)",
}
DEFAULT_SCOPES = ("printers:read",)
MAX_PERSONAL_TOKENS = 50


def check_scopes(scopes: list[str] | tuple[str, ...] | None) -> list[str]:
    """The chosen scopes, de-duplicated in the order of SCOPES; None means the default."""
    if scopes is None:
        scopes = DEFAULT_SCOPES
    if isinstance(scopes, str) or not all(isinstance(s, str) for s in scopes):
        raise Invalid("scopes must be a list of scope names, e.g. "
                       f'["{DEFAULT_SCOPES[0]}"].', field="scopes", code="invalid_scope")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise Invalid(f"Unknown scope {unknown[0]!r}; choose from "
                       f"{', '.join(SCOPES)}.", field="scopes", code="invalid_scope")
    if not scopes:
        raise Invalid("Choose at least one scope.", field="scopes", code="invalid_scope")
    return [s for s in SCOPES if s in scopes]


def token_json(record: AccessToken) -> dict:
    def iso(value):
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {"id": record.id, "name": record.name, "scope": record.scope, "scopes": record.scope.split(),
            "created_at": iso(record.created_at), "last_used_at": iso(record.last_used_at)}


async def personal_tokens(user: User) -> list[AccessToken]:
    return await AccessToken.filter(user_id=user.id, client_id="", revoked_at=None).order_by("-created_at")


async def create_personal_token(user: User, name: str,
                                scopes: list[str] | None = None) -> tuple[str, AccessToken]:
    """A new token with ``scopes`` (default printers:read); the value is returned here once,
    only its hash is stored."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("Give the token a name of 1 to 100 characters, "
                       "e.g. the script that will use it.", field="name", code="invalid_name")
    chosen = check_scopes(scopes)
    if user.email_verified_at is None:
        raise NotAllowed("Confirm your email address before creating access tokens.", code="email_unverified")
    if await AccessToken.filter(user_id=user.id, client_id="", revoked_at=None).count() >= MAX_PERSONAL_TOKENS:
        raise Conflict(f"You have {MAX_PERSONAL_TOKENS} tokens; revoke one you no longer use first.", code="too_many_tokens")
    token = new_token(ACCESS_TOKEN_PREFIX)
    record = await shielded(AccessToken.create(token_hash=token_hash(token), user_id=user.id, name=name,
                                               scope=" ".join(chosen), client_id=""))
    return token, record


async def revoke_personal_token(user: User, token_id: int | str, *, clock: Clock) -> None:
    """Revoke one of the user's own personal tokens; any other id answers 404."""
    number = row_id(AccessToken, token_id)
    revoked = number is not None and bool(await shielded(AccessToken.filter(
        id=number, user_id=user.id, client_id="", revoked_at=None).update(revoked_at=clock.now())))
    if not revoked:
        raise NotFound("You have no token with this id.")
