"""The dashboard at "/": one live card per printer, and its Server-Sent Events stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import jinja2
from markupsafe import Markup
from quart import Blueprint, current_app, g, redirect, render_template, request

from appliance.accounts.auth import SESSION_COOKIE, current_user
from appliance.accounts.models import User
from appliance.accounts.sessions import resolve_session
from appliance.core.herald import Herald, current_herald
from appliance.core.times import user_zone
from appliance.printers.dashboard import build_card, cards_for, dashboard_cards, printer_index
from appliance.printers.live import LiveHub
from appliance.printers.pictures import pictures_of

blueprint = Blueprint("dashboard", __name__)

RETRY_MS = 2000  # how soon a browser reconnects after the stream ends (e.g. a server restart)

# Main navigation: shown when the page exists in this build (areas land one by one).
NAV: tuple[tuple[str, str, bool], ...] = (
    ("Dashboard", "/", False),
    ("Printers", "/printers", False),
    ("Webhooks", "/webhooks", False),
    ("Alexa", "/alexa/setup", True),  # the setup page is for admins
    ("Apps", "/account/apps", False),
    ("Account", "/account", False),
    ("Admin", "/admin", True),
)


@dataclass
class DashboardPages:
    """What the pages compute once per app: the paths that exist (for the navigation) and
    the plain Jinja environment the cards render with."""

    nav_pages: set[str] | None = None
    card_env: jinja2.Environment | None = None


@blueprint.app_context_processor
async def _navigation() -> dict[str, Any]:
    return {"nav_links": _nav_links}


def _nav_links() -> list[dict[str, Any]]:
    app = current_app
    cache = current_herald().part(DashboardPages)
    pages = cache.nav_pages
    if pages is None:
        pages = cache.nav_pages = {rule.rule for rule in app.url_map.iter_rules() if "GET" in (rule.methods or ())}
    session = g.get("herald_session")
    is_admin = bool(session and session.user.is_admin)
    path = request.path
    links: list[dict[str, Any]] = []
    for label, target, admin_only in NAV:
        if target not in pages or (admin_only and not is_admin):
            continue
        current = path == target or (target != "/" and path.startswith(target + "/"))
        links.append({"label": label, "path": target, "current": current})
    # "Account" must not light up on /account/apps when Apps has its own entry
    if sum(link["current"] for link in links) > 1:
        best = max((link for link in links if link["current"]), key=lambda link: len(link["path"]))
        for link in links:
            link["current"] = link is best
    return links


@blueprint.get("/")
async def index():
    user = await current_user()
    if user is None:
        return redirect("/login")
    herald = current_herald()
    now = herald.clock.now()
    cards = await dashboard_cards(user, now=now, **_settings(herald))
    return await render_template(
        "dashboard/index.html",
        user=user,
        cards=[(card, card_html(card)) for card in cards],
        server_now=now.isoformat().replace("+00:00", "Z"),
        time_zone=user_zone(user.time_zone).key,
        offline_after=herald.settings.offline_after,
        base_url=herald.settings.base_url,
    )


# --- live updates ------------------------------------------------------------------


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def card_html(card: dict[str, Any]) -> Markup:
    """One card's HTML. A plain (not async) Jinja environment on the app's templates:
    Quart's async rendering costs several times more per card, and a card needs
    nothing from the request."""
    app = current_app
    cache = current_herald().part(DashboardPages)
    env = cache.card_env
    if env is None:
        env = cache.card_env = jinja2.Environment(loader=app.jinja_loader, autoescape=True,
                                                  auto_reload=app.config["TEMPLATES_AUTO_RELOAD"] or False)
    job_file = card.get("file") or (card.get("last_job") or {}).get("file")
    card = {**card, "pictures": pictures_of(current_herald(), card["id"], job_file)}
    return Markup(env.get_template("dashboard/_card.html").render(card=card))


async def _card_message(card: dict[str, Any]) -> dict[str, Any]:
    return {"id": card["id"], "name": card["name"], "state_label": card["state_label"],
            "online": card["online"], "html": str(card_html(card))}


@blueprint.get("/events/dashboard")
async def events():
    """text/event-stream of the logged-in user's printer cards (session cookie only)."""
    user = await current_user()
    if user is None:
        # 204 tells EventSource to stop reconnecting; the page's script then reloads to the login.
        return "", 204
    herald = current_herald()
    hub = herald.part(LiveHub)
    # Comment lines keep proxies from closing an idle stream; each is also a resync.
    heartbeat = float(herald.settings.live_heartbeat)
    token = request.cookies.get(SESSION_COOKIE, "")
    index = await printer_index(user.id)
    subscriber = hub.subscribe(index)
    app = current_app._get_current_object()

    async def stream() -> AsyncIterator[str]:
        nonlocal index
        try:
            async with app.app_context():
                yield f"retry: {RETRY_MS}\n\n"
                now = herald.clock.now()
                cards = await cards_for(user, list(index), now=now, **_settings(herald))
                cards.sort(key=lambda c: (c["name"], c["id"]))
                yield _sse("snapshot", {"server_now": _iso(now), "ids": [c["id"] for c in cards],
                                        "cards": [await _card_message(c) for c in cards]})
                loop = asyncio.get_running_loop()
                next_resync = loop.time() + heartbeat
                while not subscriber.closed:
                    views = await subscriber.wait(max(0.0, next_resync - loop.time()))
                    if subscriber.closed:
                        return
                    if views:
                        now = herald.clock.now()
                        zone = user_zone(user.time_zone)
                        for view in views.values():
                            card = build_card(view, now=now, zone=zone,
                                              offline_after=herald.settings.offline_after,
                                              purge_after_days=herald.settings.purge_after_days)
                            yield _sse("card", {"server_now": _iso(now), **await _card_message(card)})
                    if subscriber.take_resync() or loop.time() >= next_resync:
                        next_resync = loop.time() + heartbeat
                        if await resolve_session(token, clock=herald.clock) is None:
                            yield _sse("logout", {})
                            return
                        fresh = await printer_index(user.id)
                        async for chunk in _resync(user, index, fresh):
                            yield chunk
                        index = fresh
                        hub.watch(subscriber, index)
                        yield ": heartbeat\n\n"
        finally:
            hub.unsubscribe(subscriber)

    async def _resync(owner: User, known: dict[str, tuple], fresh: dict[str, tuple]) -> AsyncIterator[str]:
        """Cards that changed without a published status (added, renamed, another process)."""
        removed = [pid for pid in known if pid not in fresh]
        changed = [pid for pid, row in fresh.items() if known.get(pid) != row]
        now = herald.clock.now()
        if removed:
            yield _sse("remove", {"ids": removed})
        if changed:
            for card in await cards_for(owner, changed, now=now, **_settings(herald)):
                yield _sse("card", {"server_now": _iso(now), **await _card_message(card)})

    response = current_app.response_class(stream(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache, no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass events through at once
    response.timeout = None  # the stream lasts as long as the page is open
    return response


def _settings(herald: Herald) -> dict[str, Any]:
    return {"offline_after": herald.settings.offline_after,
            "purge_after_days": herald.settings.purge_after_days, "herald": herald}


def _iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")
