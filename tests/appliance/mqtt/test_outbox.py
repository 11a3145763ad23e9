"""The outbox between ingest and the broker: latest wins per topic, events one by one, bounded, with
stale events dropped; the reconnect backoff; and the control seam's refusal of unknown printers and commands."""

from __future__ import annotations

import random

from appliance.mqtt import control
from appliance.mqtt.broker import BACKOFF_MAX, backoff
from appliance.mqtt.discovery import Message
from appliance.mqtt.outbox import Outbox


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def state(printer: str, progress: float) -> Message:
    return Message(f"herald/{printer}/state", f'{{"job_percentage":{progress}}}', retain=True)


def event(printer: str, name: str) -> Message:
    return Message(f"herald/{printer}/event/{name}", "{}", retain=False)


def drain(outbox: Outbox) -> list[Message]:
    taken = []
    while (message := outbox.take()) is not None:
        taken.append(message)
    return taken


def test_latest_state_per_printer_wins_in_its_place_and_events_each_count():
    outbox = Outbox(100)
    for progress in range(10):
        outbox.put(state("a", progress))
    outbox.put(state("b", 1))
    outbox.put(event("a", "print_done"))
    outbox.put(event("a", "print_done"))
    outbox.put(state("a", 99))
    assert drain(outbox) == [state("a", 99), state("b", 1), event("a", "print_done"), event("a", "print_done")]


def test_overflow_drops_new_messages_counts_them_and_asks_for_everything_again():
    outbox = Outbox(3)
    for printer in "abc":
        assert outbox.put(state(printer, 1))
    assert not outbox.put(state("d", 1)) and not outbox.put(event("a", "print_done"))
    assert outbox.dropped == 2 and outbox.resync
    assert outbox.put(state("a", 2))  # a newer state of a waiting topic still replaces it
    assert [m.topic for m in drain(outbox)] == ["herald/a/state", "herald/b/state", "herald/c/state"]


def test_an_event_that_waited_too_long_is_dropped_but_state_is_not():
    ticks = Ticks()
    outbox = Outbox(100, event_max_age=300, monotonic=ticks)
    outbox.put(event("a", "print_done"))
    outbox.put(state("a", 5))
    ticks.now = 301
    outbox.put(event("a", "print_started"))
    assert drain(outbox) == [state("a", 5), event("a", "print_started")]
    assert outbox.stale_events == 1


def test_a_message_the_broker_did_not_take_goes_first_unless_a_newer_one_waits():
    outbox = Outbox(100)
    outbox.put(state("a", 1))
    outbox.put(state("b", 1))
    taken = outbox.take()
    outbox.give_back(taken)
    assert drain(outbox)[0] == state("a", 1)
    outbox.put(state("a", 1))
    taken = outbox.take()
    outbox.put(state("a", 2))
    outbox.give_back(taken)  # the newer state is already waiting: the old one is not sent
    assert drain(outbox) == [state("a", 2)]


def test_backoff_doubles_to_a_minute_with_jitter():
    rng = random.Random(7)
    delays = [backoff(attempt, rng=rng) for attempt in range(10)]
    assert 0.8 <= delays[0] <= 1.2 and 1.6 <= delays[1] <= 2.4 and 3.2 <= delays[2] <= 4.8
    assert all(0.8 * BACKOFF_MAX <= delay <= 1.2 * BACKOFF_MAX for delay in delays[6:])


async def test_a_command_for_no_printer_or_not_a_job_action_is_refused(herald):
    assert control.available(herald) is True  # the MQTT task listens; each press is checked (control.py)
    assert await control.run_command(herald, "some-printer", "pause") is False
    assert await control.run_command(herald, "some-printer", "start") is False


def test_the_control_buttons_pass_home_assistants_button_schema_and_are_removed_with_the_printer():
    import json

    from appliance.mqtt.discovery import PublishedPrinter, Topics, entity_configs, removal
    from tests.support.home_assistant import schema_problems

    topics = Topics(discovery_prefix="homeassistant", base="herald")
    plain = PublishedPrinter(id="p-1", name="Prusa", plugin_version="1.0")
    assert not [m for m in entity_configs(plain, topics, "http://h") if "/button/" in m.topic]
    controlled = PublishedPrinter(id="p-1", name="Prusa", plugin_version="1.0", control=True)
    buttons = {m.topic: json.loads(m.payload) for m in entity_configs(controlled, topics, "http://h")
               if "/button/" in m.topic}
    assert {c["payload_press"] for c in buttons.values()} == set(control.COMMANDS)
    assert {c["command_topic"] for c in buttons.values()} == {"herald/p-1/command"}
    assert all("state_topic" not in c for c in buttons.values())
    assert schema_problems(buttons) == []
    cleared = {m.topic for m in removal("p-1", plain.temperatures, topics) if m.payload == ""}
    assert set(buttons) <= cleared  # removal empties the buttons' configs too, whether or not they were on
    from appliance.mqtt.discovery import button_removal

    assert {m.topic for m in button_removal("p-1", topics)} == set(buttons)
