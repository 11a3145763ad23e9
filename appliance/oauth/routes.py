"""OAuth 2.0 authorization server endpoints and the "Connected apps" page."""

from __future__ import annotations

import json

from authlib.oauth2.base import OAuth2Error
from quart import Blueprint, Response, redirect, render_template, request

from appliance.accounts.auth import csrf_exempt, require_user
from appliance.apps.connections import list_connections
from appliance.apps.owner_access import list_owner_accesses
from appliance.core.db import shielded
from appliance.core.herald import current_herald
from appliance.oauth import server as oauth

blueprint = Blueprint("oauth", __name__)

_CONSENT_FIELDS = ("response_type", "client_id", "redirect_uri", "scope", "state",
                   "code_challenge", "code_challenge_method")


def _server() -> oauth.OAuthServer:
    return current_herald().part(oauth.OAuthServer)


def _to_response(result) -> Response:
    status, body, headers = result
    if isinstance(body, dict):
        response = Response(json.dumps(body), status=status, mimetype="application/json")
    else:
        response = Response(body or "", status=status)
    for key, value in headers:
        if key.lower() != "content-type" or not isinstance(body, dict):
            response.headers[key] = value
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def _error_page(error: OAuth2Error):
    html = await render_template("oauth/error.html", error=error.error,
                                 description=error.description or "The request is not valid.")
    return html, 400


@blueprint.get("/oauth/authorize")
async def authorize_form():
    user = await require_user()
    server = _server()
    oauth_request = await oauth.read_request(request)
    try:
        grant = await server.run(server.get_consent_grant, oauth_request, user)
    except OAuth2Error as error:
        if error.redirect_uri:
            return _to_response(server.handle_error_response(oauth_request, error))
        return await _error_page(error)
    client = grant.client
    fields = {name: oauth_request.payload.data.get(name, "") for name in _CONSENT_FIELDS}
    fields["scope"] = oauth_request.scope or ""
    scopes = [oauth.SCOPES.get(s, s) for s in fields["scope"].split()]
    return await render_template("oauth/consent.html", client=client, fields=fields, scopes=scopes, user=user)


@blueprint.post("/oauth/authorize")
async def authorize():
    user = await require_user()
    server = _server()
    form = await request.form
    oauth_request = await oauth.read_request(request, drop=("csrf_token", "decision"))
    try:
        grant = await server.run(server.get_consent_grant, oauth_request, user)
    except OAuth2Error as error:
        if error.redirect_uri:
            return _to_response(server.handle_error_response(oauth_request, error))
        return await _error_page(error)
    grant_user = user if form.get("decision") == "allow" else None
    result = await server.run(server.create_authorization_response, oauth_request, grant_user, grant)
    return _to_response(result)


@blueprint.post("/oauth/token")
@csrf_exempt
async def token():
    server = _server()
    oauth_request = await oauth.read_request(request)
    return _to_response(await server.run(server.create_token_response, oauth_request))


@blueprint.post("/oauth/revoke")
@csrf_exempt
async def revoke():
    server = _server()
    oauth_request = await oauth.read_request(request)
    return _to_response(await server.run(server.create_endpoint_response, "revocation", oauth_request))


@blueprint.get("/account/apps")
async def connected_apps():
    user = await require_user()
    herald = current_herald()
    grants = await oauth.list_grants(user, herald.clock.now())
    return await render_template("account/apps.html", grants=grants, revoked=request.args.get("revoked"),
                                 connections=await list_connections(user),
                                 owner_accesses=await list_owner_accesses(user))


@blueprint.post("/account/apps/<client_id>/revoke")
async def revoke_app(client_id: str):
    user = await require_user()
    herald = current_herald()
    name = await oauth.client_name(client_id)
    await shielded(oauth.revoke_grant(user.id, client_id, herald.clock.now()))
    return redirect(f"/account/apps?revoked={name}")
