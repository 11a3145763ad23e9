"""Rate limits, runtime settings and mail: the small services several areas share."""

from __future__ import annotations

import logging

import pytest

from appliance.core.clock import FakeClock
from appliance.core.errors import HeraldError, headers_of, status_of
from appliance.core.mail import send_mail
from appliance.core.ratelimit import Limit, RateLimiter
from appliance.core.runtime_settings import effective, set_runtime
from appliance.core.settings import Settings
from tests.support.smtp import SMTPServer


async def test_rate_limit_window_and_retry_after():
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limit = Limit(count=3, per=60)
    for _ in range(3):
        await limiter.hit("1.2.3.4", limit)
    with pytest.raises(HeraldError) as caught:
        await limiter.hit("1.2.3.4", limit)
    assert status_of(caught.value) == 429
    assert headers_of(caught.value)["Retry-After"] == "60"
    await limiter.hit("5.6.7.8", limit)  # other keys are not affected
    clock.advance(61)
    await limiter.hit("1.2.3.4", limit)


async def test_rate_limiter_memory_is_bounded():
    limiter = RateLimiter(FakeClock(), max_keys=100)
    for i in range(1000):
        await limiter.hit(f"key{i}", Limit(1, 60))
    assert len(limiter._hits) <= 100


async def test_runtime_setting_stored_encrypted_and_env_wins(herald, settings):
    assert await effective(herald, "signup_mode") == "invite"
    await set_runtime(herald, "signup_mode", "open")
    assert await effective(herald, "signup_mode") == "open"
    with pytest.raises(HeraldError, match="signup_mode"):
        await set_runtime(herald, "signup_mode", "everybody")
    await set_runtime(herald, "smtp_password", "hunter2-very-secret")
    from appliance.core.models import RuntimeSetting

    row = await RuntimeSetting.get(name="smtp_password")
    assert row.encrypted and "hunter2" not in row.value
    assert await effective(herald, "smtp_password") == "hunter2-very-secret"
    # An environment variable wins, and the UI may not change it.
    herald.settings = Settings(values={**settings.values, "signup_mode": "closed"},
                               from_env=frozenset({"signup_mode"}))
    assert await effective(herald, "signup_mode") == "closed"
    with pytest.raises(HeraldError) as caught:
        await set_runtime(herald, "signup_mode", "open")
    assert status_of(caught.value) == 409


async def test_mail_goes_through_a_real_smtp_server(herald):
    with SMTPServer() as smtp:
        for name, value in smtp.settings().items():
            await set_runtime(herald, name, value)
        result = await send_mail(herald, to="ada@example.com", subject="Hello", text="Body text")
        assert result.sent and not result.error
        (message,) = await smtp.wait_for(1)
        assert message["To"] == "ada@example.com"
        assert message["Subject"] == "Hello"
        assert "Body text" in message.get_payload()


async def test_mail_without_smtp_goes_to_the_log(herald, caplog):
    caplog.set_level(logging.WARNING, logger="appliance.mail")
    result = await send_mail(herald, to="ada@example.com",
                             subject="Verify", text="https://herald.test/verify/abc")
    assert not result.sent and not result.error
    assert "https://herald.test/verify/abc" in caplog.text


async def test_mail_to_unreachable_server_reports_error(herald):
    from tests.conftest import free_port

    await set_runtime(herald, "smtp_host", "127.0.0.1")
    await set_runtime(herald, "smtp_port", free_port())
    await set_runtime(herald, "smtp_tls", "none")
    result = await send_mail(herald, to="ada@example.com", subject="x", text="y")
    assert not result.sent and result.error
