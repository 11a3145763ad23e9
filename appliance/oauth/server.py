"""Herald's OAuth 2.0 authorization server, built on authlib's RFC 6749/7636/7009 rules.

authlib is synchronous; Herald's database is async. Each OAuth request runs
authlib in a worker thread (``OAuthServer.run``) and the grant hooks hand their
database work back to the event loop (``_db``). Database writes made that way
run as their own tasks on the loop, so a client disconnect cannot cut them off.

Tokens are ``AccessToken`` rows (``hat_`` access tokens, ``hrt_`` refresh
tokens, stored as SHA-256 hashes). Codes and refresh tokens are claimed with a
conditional UPDATE, so each works exactly once even under concurrent requests.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Payload, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from quart import Request
from werkzeug.datastructures import MultiDict

from appliance.accounts.models import AccessToken, User
from appliance.accounts.tokens import SCOPES as TOKEN_SCOPES
from appliance.core.errors import Invalid, UnsupportedMediaType
from appliance.core.herald import Herald
from appliance.core.secrets import (
    ACCESS_TOKEN_PREFIX,
    REFRESH_TOKEN_PREFIX,
    constant_time_equal,
    new_token,
    token_hash,
)
from appliance.oauth.models import AuthorizationCode, OAuthClient

# What a third-party app (Alexa included) may be registered for: a subset of all token
# scopes. Personal tokens may also carry "webhooks"; apps may not.
OAUTH_SCOPES = ("printers:read",)
SCOPES = {name: TOKEN_SCOPES[name] for name in OAUTH_SCOPES}
log = logging.getLogger(__name__)

CODE_LIFETIME = timedelta(minutes=5)
REFRESH_LIFETIME = timedelta(days=365)
# A refresh token presented again after it was rotated means that two parties hold
# it -- one of them a thief (OAuth 2.0 Security BCP, RFC 9700 section 4.14.2): the whole
# grant is revoked. Within this grace a second use is only refused, because a
# client that sent the same refresh twice at once (a retry racing the first
# answer) would otherwise lose the tokens it just received.
REFRESH_REUSE_GRACE = timedelta(seconds=60)
ALEXA_REDIRECT_HOSTS = (
    "https://pitangui.amazon.com/api/skill/link/",
    "https://layla.amazon.com/api/skill/link/",
    "https://alexa.amazon.co.jp/api/skill/link/",
)


def alexa_redirect_uris(vendor_id: str) -> list[str]:
    return [prefix + vendor_id for prefix in ALEXA_REDIRECT_HOSTS]


# --- the client registry ------------------------------------------------------------

@dataclass
class Client(ClientMixin):
    """A registered client as authlib sees it (the secret decrypted for comparison)."""

    client_id: str
    name: str
    secret: str
    redirect_uris: list[str]
    scopes: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(self.scopes)
        return " ".join(s for s in scope.split() if s in self.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact match, as RFC 9700 requires

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(self.secret) and constant_time_equal(self.secret, client_secret or "")

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


def _client_from_row(row: OAuthClient, secret_box) -> Client:
    return Client(row.client_id, row.name, secret_box.decrypt(row.secret_encrypted),
                  list(row.redirect_uris or []), [s for s in row.scopes.split() if s in SCOPES])


def check_redirect_uri_text(uri: str) -> str:
    uri = uri.strip()
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
        raise Invalid(f"{uri!r} is not an absolute http(s) URL without a fragment.", code="invalid_redirect_uri")
    return uri


async def create_client(herald: Herald, *, name: str, redirect_uris: list[str], scopes: list[str] | None = None,
                        kind: str = "app", owner: User | None = None) -> tuple[OAuthClient, str]:
    """Register a client; returns the row and its secret (also kept encrypted)."""
    scopes = scopes or ["printers:read"]
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise Invalid(f"Unknown scope {unknown[0]}.", code="invalid_scope")
    uris = [check_redirect_uri_text(u) for u in redirect_uris]
    secret = new_token()
    row = await OAuthClient.create(
        client_id="herald-" + secrets.token_hex(10),
        name=name, kind=kind, secret_encrypted=herald.secret_box.encrypt(secret),
        redirect_uris=uris, scopes=" ".join(scopes), owner=owner)
    return row, secret


async def client_secret(herald: Herald, row: OAuthClient) -> str:
    return herald.secret_box.decrypt(row.secret_encrypted)


# --- what authlib sees of codes and tokens ----------------------------------------------

@dataclass
class _Code:
    row: AuthorizationCode
    user: User

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    @property
    def code_challenge(self) -> str | None:
        return self.row.code_challenge

    @property
    def code_challenge_method(self) -> str | None:
        return self.row.code_challenge_method


@dataclass
class _Token:
    row: AccessToken
    user: User

    def check_client(self, client: Client) -> bool:
        return self.row.client_id == client.client_id

    def get_scope(self) -> str:
        return self.row.scope

    def get_user(self) -> User:
        return self.user


# --- authlib glue for Quart ---------------------------------------------------------------

class _Payload(OAuth2Payload):
    def __init__(self, values: dict[str, list[str]]) -> None:
        self._datalist = defaultdict(list, values)

    @property
    def data(self) -> dict[str, str]:
        return {k: v[0] for k, v in self._datalist.items() if v}

    @property
    def datalist(self):
        return self._datalist


class QuartOAuth2Request(OAuth2Request):
    """An already-read Quart request. Transport security is the deployment's job (public_url)."""

    def __init__(self, method: str, uri: str, headers: dict[str, str],
                 args: dict[str, list[str]], form: dict[str, list[str]]) -> None:
        # authlib's own __init__ refuses http:// URIs; Herald behind a TLS proxy sees http.
        self.method, self.uri, self.headers = method, uri, headers
        self._body = None
        self._args = {k: v[0] for k, v in args.items() if v}
        self._form = {k: v[0] for k, v in form.items() if v}
        merged: dict[str, list[str]] = defaultdict(list)
        for source in (args, form):
            for key, values in source.items():
                merged[key].extend(values)
        self.payload = _Payload(merged)
        self.client = self.auth_method = self.user = None
        self.authorization_code = self.refresh_token = self.credential = None
        self._scope = None

    @property
    def args(self):
        return self._args

    @property
    def form(self):
        return self._form


async def read_request(request: Request, *, drop: tuple[str, ...] = ()) -> QuartOAuth2Request:
    form = await request.form if request.method == "POST" else MultiDict()
    args = {k: request.args.getlist(k) for k in request.args}
    body = {k: form.getlist(k) for k in form if k not in drop} if form else {}
    headers = {k: v for k, v in request.headers.items()}
    return QuartOAuth2Request(request.method, request.url, headers, args, body)


class S256Challenge(CodeChallenge):
    """PKCE with S256 only: a plain challenge would give no protection over TLS-less hops."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        return super().validate_code_challenge(grant, redirect_uri)


class _CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def save_authorization_code(self, code: str, request) -> None:
        data = request.payload.data
        self.server.db(AuthorizationCode.create(
            code_hash=token_hash(code), client_id=request.client.client_id, user=request.user,
            redirect_uri=request.payload.redirect_uri or "", scope=request.scope or "",
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method") if data.get("code_challenge") else None,
            expires_at=self.server.now() + CODE_LIFETIME))

    def query_authorization_code(self, code: str, client: Client):
        return self.server.db(_claim_code(code, client.client_id, self.server.now()))

    def delete_authorization_code(self, authorization_code) -> None:
        pass  # claimed (marked used) when queried, so that it works once even under races

    def authenticate_user(self, authorization_code: _Code) -> User:
        return authorization_code.user


class _RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh hands out a new refresh token

    def authenticate_refresh_token(self, refresh_token: str):
        client = self.request.client
        # The scope is checked before the token is claimed: a refused request (a wider
        # scope) must leave the refresh token working, or the user's link is lost.
        wanted = set((self.request.payload.scope or "").split())
        return self.server.db(_claim_refresh_token(refresh_token, client.client_id, self.server.now(),
                                                   wanted_scope=wanted))

    def authenticate_user(self, refresh_token: _Token) -> User:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: _Token) -> None:
        pass  # revoked when claimed


class _Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None):
        return self.server.db(_find_token(token_string))

    def revoke_token(self, token: _Token, request) -> None:
        # RFC 7009: revoking either token of an authorization ends the tokens issued under it.
        self.server.db(revoke_chain(token.row, self.server.now()))


class OAuthServer(AuthorizationServer):
    def __init__(self, herald: Herald) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.herald = herald
        self.loop: asyncio.AbstractEventLoop | None = None
        minutes = herald.settings.oauth_access_token_minutes
        self.register_token_generator("default", BearerTokenGenerator(
            access_token_generator=lambda **_: new_token(ACCESS_TOKEN_PREFIX),
            refresh_token_generator=lambda **_: new_token(REFRESH_TOKEN_PREFIX),
            expires_generator=lambda client, grant_type: minutes * 60,
        ))
        self.register_grant(_CodeGrant, [S256Challenge(required=True)])
        self.register_grant(_RefreshGrant)
        self.register_endpoint(_Revocation)

    # run authlib off the loop; its hooks come back to the loop for the database
    async def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.loop = asyncio.get_running_loop()
        return await asyncio.to_thread(function, *args, **kwargs)

    def db(self, awaitable):
        """Run database work on the event loop from authlib's thread and wait for its result."""
        assert self.loop is not None

        async def wait():
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wait(), self.loop).result(timeout=30)

    def now(self):
        return self.herald.clock.now()

    def query_client(self, client_id: str) -> Client | None:
        row = self.db(OAuthClient.get_or_none(client_id=client_id))
        return _client_from_row(row, self.herald.secret_box) if row else None

    def save_token(self, token: dict[str, Any], request) -> None:
        now = self.now()
        client: Client = request.client
        # A refresh continues the chain of the token it rotates; a code starts one, named
        # after the code so that a reuse of the code ends the chain.
        previous = getattr(request, "refresh_token", None)
        code = getattr(request, "authorization_code", None)
        grant_id = (getattr(getattr(previous, "row", None), "grant_id", None)
                    or (code_grant_id(code.row) if isinstance(code, _Code) else None) or str(uuid.uuid4()))
        self.db(AccessToken.create(grant_id=grant_id,
            token_hash=token_hash(token["access_token"]), user=request.user, name=client.name,
            scope=token.get("scope", ""), client_id=client.client_id,
            refresh_token_hash=token_hash(token["refresh_token"]) if token.get("refresh_token") else None,
            expires_at=now + timedelta(seconds=token["expires_in"]),
            refresh_expires_at=now + REFRESH_LIFETIME if token.get("refresh_token") else None))

    def create_oauth2_request(self, request) -> OAuth2Request:
        return request  # already a QuartOAuth2Request (see read_request)

    def create_json_request(self, request):
        # authlib calls this only for JSON-body endpoints (e.g. dynamic client
        # registration), which Herald does not offer; answer as a client error.
        raise UnsupportedMediaType("Herald's OAuth endpoints take application/x-www-form-urlencoded bodies.")

    def handle_response(self, status: int, body: Any, headers: Any):
        return status, body, list(headers or [])

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


# --- database work the grants hand back to the loop ------------------------------------------

def code_grant_id(row: AuthorizationCode) -> str:
    """The grant id of the tokens issued from a code, so a reused code can find and end them."""
    return str(uuid.uuid5(_CODE_GRANTS, row.code_hash))


_CODE_GRANTS = uuid.UUID("6c1f6f0e-8d7e-4f53-9a59-3c0f0e2b7a11")


async def _claim_code(code: str, client_id: str, now) -> _Code | None:
    row = await AuthorizationCode.get_or_none(code_hash=token_hash(code), client_id=client_id)
    if row is not None and row.used_at is not None:
        # RFC 6749 4.1.2: a code used twice means someone else holds it; end what it issued.
        ended = await AccessToken.filter(grant_id=code_grant_id(row), revoked_at=None).update(revoked_at=now)
        if ended:
            log.warning("an authorization code of client %s was used again: revoked the %d live tokens "
                        "issued from it for user %s", client_id, ended, row.user_id)
        return None
    if row is None or row.expires_at <= now:
        return None
    claimed = await AuthorizationCode.filter(id=row.id, used_at=None).update(used_at=now)
    if claimed != 1:
        return None
    user = await User.get(id=row.user_id)
    return _Code(row, user)


async def _claim_refresh_token(refresh_token: str, client_id: str, now,
                               wanted_scope: set[str] | frozenset[str] = frozenset()) -> _Token | None:
    if not refresh_token.startswith(REFRESH_TOKEN_PREFIX):
        return None
    row = await AccessToken.get_or_none(refresh_token_hash=token_hash(refresh_token), client_id=client_id)
    if row is None:
        return None
    if row.revoked_at is not None:
        if now - row.revoked_at > REFRESH_REUSE_GRACE:
            ended = await revoke_chain(row, now)
            if ended:
                log.warning("a rotated refresh token of client %s was used again: revoked the grant of user %s "
                            "(%d live tokens)", client_id, row.user_id, ended)
        return None
    if row.refresh_expires_at is not None and row.refresh_expires_at <= now:
        return None
    if wanted_scope and not wanted_scope <= set(row.scope.split()):
        raise InvalidScopeError("The requested scope is wider than the one granted; the refresh token still works.")
    claimed = await AccessToken.filter(id=row.id, revoked_at=None).update(revoked_at=now)
    if claimed != 1:
        return None
    return _Token(row, await User.get(id=row.user_id))


async def _find_token(token: str) -> _Token | None:
    if token.startswith(REFRESH_TOKEN_PREFIX):
        row = await AccessToken.get_or_none(refresh_token_hash=token_hash(token))
    else:
        row = await AccessToken.get_or_none(token_hash=token_hash(token))
    if row is None or not row.client_id:
        return None
    return _Token(row, await User.get(id=row.user_id))


async def revoke_chain(row: AccessToken, now) -> int:
    """End the live tokens descended from the same authorization as ``row`` (tokens
    issued before grants were recorded: every token of that user for that client)."""
    if row.grant_id is None:
        return await revoke_grant(row.user_id, row.client_id, now)
    return await AccessToken.filter(grant_id=row.grant_id, revoked_at=None).update(revoked_at=now)


async def client_name(client_id: str) -> str:
    """What to call a client in a message: its name, or its id when it is gone."""
    client = await OAuthClient.get_or_none(client_id=client_id)
    return client.name if client else client_id


async def revoke_grant(user_id: int, client_id: str, now) -> int:
    """End every token a user granted to a client (revocation, unlinking, "Connected apps")."""
    return await AccessToken.filter(user_id=user_id, client_id=client_id, revoked_at=None).update(revoked_at=now)


# --- "Connected apps" ------------------------------------------------------------------------

@dataclass
class Grant:
    client_id: str
    name: str
    scope: str
    granted_at: Any
    last_used_at: Any
    scopes_described: list[str] = field(default_factory=list)


async def list_grants(user: User, now) -> list[Grant]:
    """The apps a user has granted access to and that still hold a live token."""
    rows = await AccessToken.filter(user_id=user.id, revoked_at=None).exclude(client_id="").order_by("created_at")
    grants_by_client: dict[str, Grant] = {}
    for row in rows:
        alive = (row.expires_at and row.expires_at > now) or (
            row.refresh_token_hash and (row.refresh_expires_at is None or row.refresh_expires_at > now))
        if not alive:
            continue
        grant = grants_by_client.get(row.client_id)
        if grant is None:
            client = await OAuthClient.get_or_none(client_id=row.client_id)
            grant = Grant(row.client_id, client.name if client else row.name, row.scope, row.created_at,
                          row.last_used_at)
            grants_by_client[row.client_id] = grant
        if row.last_used_at and (grant.last_used_at is None or row.last_used_at > grant.last_used_at):
            grant.last_used_at = row.last_used_at
        grant.scope = row.scope
    for grant in grants_by_client.values():
        grant.scopes_described = [SCOPES.get(s, s) for s in grant.scope.split()]
    return list(grants_by_client.values())


async def revoke_for_access_token(token: str, now) -> bool:
    """Alexa's SkillDisabled event: end the authorization behind the token the request
    carries (another Amazon account linked to the same Herald user keeps its own)."""
    if not token or not token.startswith(ACCESS_TOKEN_PREFIX):
        return False
    row = await AccessToken.get_or_none(token_hash=token_hash(token))
    if row is None or not row.client_id:
        return False
    await revoke_chain(row, now)
    return True
