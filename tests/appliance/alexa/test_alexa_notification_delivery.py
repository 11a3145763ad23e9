"""Alexa notifications are durable work: a row per event and account, claimed in one
statement, retried with backoff on timeouts, 5xx and 429 (after Retry-After), with a fresh
Login with Amazon token after a 401 or 403, given up on other 4xx; a claim left by a stopped
process is taken over; each event notifies each account once. Against the local server that
answers as Amazon's Proactive Events API does."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from appliance.alexa.models import AlexaAccount, AlexaNotification
from appliance.alexa.notifications import AlexaNotifier, message_alert
from appliance.core.herald import herald_of
from tests.support.alexa import SKILL_ID
from tests.support.amazon import FakeAlexaApi
from tests.support.printers import bearer, event_body, make_printer
from tests.support.users import make_user

ALEXA_USER = "amzn1.ask.account.TESTUSER"


@pytest.fixture
def settings(settings):
    return settings.replace(alexa_skill_id=SKILL_ID, alexa_single_owner=True, alexa_verify_requests=False)


async def eventually(check, seconds: float = 30.0) -> None:
    """Wait until ``check()`` holds (database or fake server state; no wall-clock claim)."""
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - the state is in the database, not an event
            await asyncio.sleep(0.05)


@pytest.fixture
async def setup(app, client, herald):
    """An opted-in, permitted Amazon account for the owner of printer "Prusa"; yields (notifier, key, api)."""
    user = await make_user("owner@example.com", admin=True)
    _, key = await make_printer(herald, user, "Prusa")
    async with FakeAlexaApi() as api:
        herald_of(app.app).settings = herald.settings.replace(
            alexa_client_id=api.client_id, alexa_client_secret=api.client_secret,
            alexa_token_url=f"{api.url}/auth/o2/token", alexa_api_base="https://unused.invalid")
        await AlexaAccount.create(user_id=user.id, alexa_user_id=ALEXA_USER, api_endpoint=api.url,
                                  notify=True, subscribed=True)
        yield herald_of(app.app).part(AlexaNotifier), key, api


async def _event(client, key, number, type_="print.done"):
    body = event_body(event_id=f"7b0e0b8e-0000-4000-8000-{number:012d}", type_=type_)
    response = await client.post("/api/v1/printer/events", json=body, headers=bearer(key))
    assert response.status_code == 202, await response.get_data(as_text=True)


async def _row(**values) -> AlexaNotification:
    async def matches() -> bool:
        row = await AlexaNotification.first()
        return row is not None and all(getattr(row, k) == v for k, v in values.items())
    await eventually(matches)
    row = await AlexaNotification.first()
    assert row is not None
    return row


async def test_5xx_429_and_401_are_tried_again_with_backoff_and_a_fresh_token(client, clock, setup):
    notifier, key, api = setup
    api.event_faults = [503, 429, 401]
    api.retry_after = "40"
    await _event(client, key, 1)
    row = await _row(attempts=1, status="pending")
    assert row.last_error == "Proactive Events API answered HTTP 503"
    wait = row.next_attempt_at - clock.now()
    assert timedelta(seconds=3) <= wait <= timedelta(seconds=7)  # the schedule's 5 s, with jitter
    notifier.notify()
    await asyncio.sleep(0.3)
    assert len(api.events) == 1  # not due yet: nothing is sent early

    clock.advance(wait.total_seconds())
    notifier.notify()
    row = await _row(attempts=2, status="pending")  # 429
    assert row.next_attempt_at - clock.now() == timedelta(seconds=40)  # Retry-After, not the schedule
    clock.advance(40)
    notifier.notify()
    row = await _row(status="delivered")  # 401 -> a fresh token at once -> 202
    assert row.attempts == 4 and row.last_error == "" and row.delivered_at is not None

    assert [e.headers["Authorization"] for e in api.events] == [
        "Bearer Atc|proactive-1"] * 3 + ["Bearer Atc|proactive-2"]
    assert len(api.tokens) == 2 and all(t.body["scope"] == "alexa::proactive_events" for t in api.tokens)
    assert len({e.body["referenceId"] for e in api.events}) == 1  # one referenceId across every try
    assert api.accepted == [api.events[-1]] and notifier.sent == 1


async def test_a_token_amazon_no_longer_takes_is_replaced_and_a_timeout_is_tried_again(client, clock, setup):
    notifier, key, api = setup
    notifier.timeout = 0.5
    await notifier.close()  # the next call opens a session with the short timeout
    api.event_hold = hold = asyncio.Event()
    await _event(client, key, 1)
    row = await _row(attempts=1, status="pending")
    assert row.last_error.startswith("no answer")
    api.revoke_tokens()  # Amazon answers 403 "the authentication token is invalid"
    clock.advance(10)
    notifier.notify()
    await _row(status="delivered", attempts=3)
    assert [e.headers["Authorization"] for e in api.events][-2:] == ["Bearer Atc|proactive-1",
                                                                      "Bearer Atc|proactive-2"]
    assert len(api.accepted) == 1
    hold.set()  # the held answer may end now (Herald stopped waiting for it long ago)


async def test_other_4xx_answers_are_final_and_409_means_alexa_has_it(client, clock, setup):
    notifier, key, api = setup
    api.event_faults = [400]
    await _event(client, key, 1)
    row = await _row(status="failed")
    assert row.attempts == 1 and "HTTP 400" in row.last_error
    clock.advance(24 * 3600)
    notifier.notify()
    await asyncio.sleep(0.3)
    assert len(api.events) == 1  # a 400 is never sent again

    await AlexaNotification.all().delete()
    api.event_faults = [409]  # an earlier try got through, its answer was lost
    await _event(client, key, 2, "print.failed")
    row = await _row(status="delivered")
    assert row.attempts == 1 and notifier.sent == 0


async def test_a_claim_left_by_a_stopped_process_is_taken_over_and_each_event_notifies_once(
        app, client, clock, setup):
    notifier, key, api = setup
    account = await AlexaAccount.get(alexa_user_id=ALEXA_USER)
    now = clock.now()
    body = message_alert(printer_name="Prusa", what="print done", alexa_user_id=ALEXA_USER,
                         reference="herald~left~1", now=now)
    # what a process that died while sending leaves behind: in flight, its lease running out
    await AlexaNotification.create(account_id=account.id, reference_id="herald~left~1", body=body,
                                   api_endpoint=api.url, status="in_flight", attempts=1, claimed_by="gone:1:x",
                                   locked_until=now + timedelta(seconds=30), next_attempt_at=now,
                                   expires_at=now + timedelta(hours=6))
    notifier.notify()
    await asyncio.sleep(0.3)
    assert api.events == []  # its lease still holds
    clock.advance(31)
    notifier.notify()
    row = await _row(status="delivered")
    assert row.claimed_by == notifier.holder and row.attempts == 2

    # the plugin sends the same event twice: one notification
    await _event(client, key, 7)
    await _event(client, key, 7)
    await api.wait_for_events(2)
    await eventually(lambda: _count_is(2))
    assert await AlexaNotification.all().count() == 2
    assert len(api.accepted) == 2


async def _count_is(n: int) -> bool:
    return await AlexaNotification.filter(status="delivered").count() == n


async def test_a_notification_older_than_its_expiry_is_dropped_unsent(client, clock, setup):
    notifier, key, api = setup
    api.event_faults = [503]
    await _event(client, key, 1)
    await _row(attempts=1, status="pending")
    clock.advance(7 * 3600)  # past expiryTime (6 h): Alexa would no longer show it
    notifier.notify()
    row = await _row(status="failed")
    assert row.last_error == "expired before Alexa took it" and len(api.events) == 1


async def test_finished_notifications_are_purged_after_a_week(herald, clock, setup):
    from appliance.alexa.notifications import purge_notifications

    _, _, api = setup
    account = await AlexaAccount.get(alexa_user_id=ALEXA_USER)
    later = clock.now() + timedelta(days=30)  # the pending one is not due: the worker leaves it
    for number, status in enumerate(("delivered", "failed", "pending")):
        await AlexaNotification.create(account_id=account.id, reference_id=f"herald~old~{number}", body={},
                                       api_endpoint=api.url, status=status, next_attempt_at=later,
                                       expires_at=later)
    await AlexaNotification.all().update(created_at=clock.now())
    clock.advance(6 * 24 * 3600)
    assert await purge_notifications(herald) == 0
    clock.advance(2 * 24 * 3600)
    assert await purge_notifications(herald) == 2
    assert [n.status for n in await AlexaNotification.all()] == ["pending"]
