"""The outbox on disk, the retry policy and the publisher against a real HTTP server."""

from __future__ import annotations

import os
import time

import pytest
from octoprint_herald.client import HeraldClient, HeraldError
from octoprint_herald.outbox import Outbox
from octoprint_herald.publisher import NOT_CONFIGURED_WAIT, Intervals, Publisher, RetryPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


STATUS = {"state": "Operational", "state_id": "operational", "temperatures": {}, "job": {}, "last_job": None}


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def status():
    return dict(STATUS)


@pytest.fixture
def make_publisher(tmp_path, clock, status):
    def make(receiver_url: str | None, **kwargs) -> Publisher:
        publisher = Publisher(Outbox(str(tmp_path / "outbox")), lambda: dict(status), clock=clock,
                              policy=kwargs.pop("policy", RetryPolicy(base=2, cap=60, jitter=0.25)), **kwargs)
        publisher.configure(HeraldClient(receiver_url, key="hpk_test", timeout=(2, 2)) if receiver_url else None)
        return publisher

    return make


# -- outbox -------------------------------------------------------------------------------

def test_outbox_keeps_events_in_order_across_a_restart(tmp_path):
    outbox = Outbox(str(tmp_path / "outbox"))
    names = [outbox.put({"event": {"id": f"e{i}"}, "snapshot": False}) for i in range(5)]
    assert outbox.names() == names
    # Half-written leftovers of a crash are dropped at the next start, complete files kept.
    (tmp_path / "outbox" / "zzz-broken.json.tmp").write_text("{")
    reopened = Outbox(str(tmp_path / "outbox"))
    assert [reopened.read(n)[0]["event"]["id"] for n in reopened.names()] == ["e0", "e1", "e2", "e3", "e4"]
    assert not (tmp_path / "outbox" / "zzz-broken.json.tmp").exists()
    reopened.remove(names[0])
    assert len(reopened) == 4


def test_a_damaged_outbox_file_is_set_aside_not_retried_forever(tmp_path):
    outbox = Outbox(str(tmp_path / "outbox"))
    (tmp_path / "outbox" / "000000000001-bad.json").write_text("{not json")
    good = outbox.put({"event": {"id": "good"}, "snapshot": False})
    assert outbox.read(outbox.names()[0]) is None
    assert outbox.names() == [good]
    assert os.listdir(tmp_path / "outbox" / "rejected") == ["000000000001-bad.json"]


# -- retry policy -------------------------------------------------------------------------

def test_backoff_grows_is_capped_and_jitter_only_shortens():
    policy = RetryPolicy(base=2, factor=2, cap=60, jitter=0.25)
    assert [policy.next_delay(n, rand=0.0) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert policy.next_delay(3, rand=1.0) == 6.0
    delays = [policy.next_delay(20) for _ in range(200)]
    assert all(45.0 <= d <= 60.0 for d in delays)
    assert len(set(delays)) > 100  # jittered, so printers do not retry in lockstep


# -- publisher ----------------------------------------------------------------------------

def test_events_go_out_in_order_then_the_status_and_leave_the_outbox(receiver, make_publisher):
    publisher = make_publisher(receiver.url)
    ids = [publisher.enqueue_event("print.progress", {"progress": p}, {"progress": {"completion": p}})
           for p in (1, 2, 3)]
    publisher.step()
    events = receiver.events()
    assert [e["id"] for e in events] == ids
    assert events[0]["type"] == "print.progress" and events[0]["payload"] == {"progress": 1}
    assert events[0]["printer_data"] == {"progress": {"completion": 1}}
    assert receiver.requests[0].headers["Authorization"] == "Bearer hpk_test"
    assert receiver.requests[-1].path == "/api/v1/printer/status"
    assert len(publisher.outbox) == 0
    assert publisher.state()["last_success"] is not None


def test_herald_down_keeps_events_backs_off_and_resets_after_success(receiver, make_publisher, clock):
    publisher = make_publisher(receiver.url, policy=RetryPolicy(base=2, cap=10, jitter=0.0))
    publisher.enqueue_event("print.started", {"name": "a.gcode"}, {})
    receiver.fail_with = 503
    waits = []
    for _ in range(5):
        waits.append(publisher.step())
        clock.now += waits[-1]
    assert waits == [2, 4, 8, 10, 10]
    assert len(publisher.outbox) == 1
    state = publisher.state()
    assert state["queued_events"] == 1 and state["publishing"] is False
    assert "503" in state["last_error"]

    # Before the retry time nothing is attempted, even when woken.
    receiver.fail_with = None
    publisher.attempts, publisher.retry_at = 1, clock.now + 5
    assert publisher.step() == pytest.approx(5)
    assert receiver.events() == []
    clock.now += 5
    publisher.step()
    assert [e["type"] for e in receiver.events()] == ["print.started"]
    assert publisher.attempts == 0 and publisher.state()["last_error"] is None

    # After the success, the next failure starts again from the base delay.
    receiver.fail_with = 500
    publisher.enqueue_event("print.done", {}, {})
    assert publisher.step() == 2


def test_events_survive_a_restart_and_arrive_exactly_once(tmp_path, receiver, make_publisher):
    down = make_publisher("http://127.0.0.1:9")  # nothing listens there
    ids = [down.enqueue_event("print.progress", {"progress": p}, {}) for p in range(1, 6)]
    down.step()
    assert len(down.outbox) == 5
    down.stop()

    restarted = make_publisher(receiver.url)  # a new process: a fresh Outbox on the same folder
    restarted.step()
    restarted.step()
    assert [e["id"] for e in receiver.events()] == ids
    assert len(restarted.outbox) == 0


def test_status_is_latest_wins_and_unchanged_status_waits_for_the_heartbeat(receiver, make_publisher, clock, status):
    publisher = make_publisher(receiver.url, intervals=lambda: Intervals(printing=30, idle=60))
    publisher.step()
    assert len(receiver.statuses()) == 1
    publisher.request_status()
    publisher.request_status()
    publisher.step()
    assert len(receiver.statuses()) == 1  # nothing changed: not re-sent

    status.update(state="Printing", state_id="printing")
    status["state"] = "Printing"
    publisher.request_status()
    wait = publisher.step()
    assert [s["state"] for s in receiver.statuses()] == ["Operational", "Printing"]
    assert wait == pytest.approx(30)  # printing: heartbeat every 30 s

    clock.now += 29
    publisher.step()
    assert len(receiver.statuses()) == 2
    clock.now += 1
    publisher.step()
    assert len(receiver.statuses()) == 3  # the heartbeat re-sends an unchanged status

    # While Herald is down, the status changes twice: only the newest one is sent.
    receiver.fail_with = 503
    status["state"] = "Paused"
    publisher.request_status()
    publisher.step()
    status["state"] = "Printing again"
    receiver.fail_with = None
    clock.now += 100
    publisher.step()
    assert [s["state"] for s in receiver.statuses()][-1] == "Printing again"
    assert "Paused" not in [s["state"] for s in receiver.statuses()]


def test_a_401_stops_publishing_until_relinked(receiver, make_publisher, clock):
    changes = []
    publisher = make_publisher(receiver.url, on_change=changes.append)
    receiver.fail_with = 401
    publisher.enqueue_event("print.started", {}, {})
    assert publisher.step() == NOT_CONFIGURED_WAIT
    state = publisher.state()
    assert state["needs_relink"] is True and "link the printer again" in state["last_error"]
    assert changes[-1]["needs_relink"] is True

    receiver.fail_with = None
    clock.now += 3600
    publisher.step()
    assert receiver.requests == []  # stopped: no more calls with a refused key
    assert publisher.enqueue_event("print.done", {}, {}) is None  # and no new events piling up

    publisher.configure(HeraldClient(receiver.url, key="hpk_new"))
    publisher.step()
    assert [e["type"] for e in receiver.events()] == ["print.started"]
    assert receiver.requests[0].headers["Authorization"] == "Bearer hpk_new"


def test_an_event_herald_refuses_for_good_is_set_aside_and_the_rest_flow(receiver, make_publisher):
    publisher = make_publisher(receiver.url)
    refused = publisher.enqueue_event("print.started", {"bad": True}, {})
    publisher.enqueue_event("print.done", {}, {})

    def events(request):
        if request.json()["id"] == refused:
            return 422, {"error": "invalid", "message": "payload: wrong type"}
        return 202, {}

    receiver.routes[("POST", "/api/v1/printer/events")] = events
    publisher.step()
    assert len(publisher.outbox) == 0
    assert len(os.listdir(publisher.outbox.rejected_folder)) == 1
    assert publisher.needs_relink is False and publisher.attempts == 0


def test_a_wrong_address_or_an_old_plugin_keeps_events_for_later(receiver, make_publisher, clock):
    publisher = make_publisher(receiver.url)
    publisher.enqueue_event("print.started", {}, {})
    errors = []
    for status in (404, 426, 429):
        receiver.fail_with = status
        publisher.step()
        errors.append(publisher.state()["last_error"])
        clock.now += 1000
    assert len(publisher.outbox) == 1 and os.listdir(publisher.outbox.rejected_folder) == []
    assert "is the address right" in errors[0]
    assert errors[1] == "told to fail"  # Herald's own words on a 426 ("update the plugin")
    assert "slow down" in errors[2]
    receiver.fail_with = None
    publisher.step()
    assert [e["type"] for e in receiver.events()] == ["print.started"]


def test_a_snapshot_is_attached_as_multipart_when_asked(receiver, make_publisher):
    publisher = make_publisher(receiver.url, snapshot_url=lambda: receiver.url + "/webcam/snapshot")
    event_id = publisher.enqueue_event("print.done", {"name": "a.gcode"}, {}, snapshot=True)
    publisher.step()
    request = receiver.of("POST", "/api/v1/printer/events")[0]
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    parts = request.parts()
    assert parts["snapshot"] == receiver.snapshot
    assert receiver.events()[0]["id"] == event_id


def test_a_hanging_herald_times_out_and_never_blocks_the_event_thread(receiver, make_plugin):
    """Proved by order, not by a stopwatch: every hook returns while Herald holds the request."""
    import threading

    plugin = make_plugin(herald_url=receiver.url, printer_key="hpk_k")
    plugin._publisher_timeout = (2, 2)
    receiver.hold = release = threading.Event()
    plugin.on_after_startup()
    assert receiver.held.wait(30), "the publisher never called Herald"
    order = ["herald holds a request"]
    plugin.on_event("PrintStarted", {"name": "a.gcode", "path": "a.gcode", "origin": "local"})
    for p in range(1, 51):
        plugin.on_print_progress("local", "a.gcode", p)
    plugin.on_gcode_received(None, "echo:busy: paused for user")
    plugin.on_gcode_sent(None, "sent", "M600", None, "M600")
    order.append("hooks returned" if not release.is_set() else "hooks returned after the release")
    # The events are on disk meanwhile, waiting for Herald, and the wait is reported as such.
    assert plugin._intake.wait_idle(30)
    assert len(plugin._publisher.outbox) == 52
    deadline = time.monotonic() + 30
    while "did not answer in time" not in (plugin._state()["last_error"] or "") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "did not answer in time" in plugin._state()["last_error"]
    release.set()
    order.append("herald released")
    assert order == ["herald holds a request", "hooks returned", "herald released"]


def test_client_errors_say_what_to_do(receiver):
    client = HeraldClient(receiver.url, key="hpk_x", timeout=(2, 2))
    receiver.fail_with = 401
    with pytest.raises(HeraldError, match="link the printer again") as caught:
        client.verify_key()
    assert caught.value.unauthorized
    receiver.fail_with = 426
    with pytest.raises(HeraldError, match="told to fail"):
        client.verify_key()
    with pytest.raises(HeraldError, match="connection refused"):
        HeraldClient("http://127.0.0.1:9", key="hpk_x").verify_key()
    with pytest.raises(HeraldError, match="must start with http"):
        HeraldClient("herald.local", key="hpk_x").verify_key()


def test_nan_and_infinite_readings_are_sent_as_null_not_dropped(receiver):
    """Herald refuses NaN/Infinity (they are not JSON); one odd reading must not cost the
    whole status or event."""
    client = HeraldClient(receiver.url, key="hpk_x", timeout=(2, 2))
    client.put_status({"state": "Printing", "state_id": "printing",
                       "temperatures": {"tool0": {"actual": float("nan"), "target": float("inf")},
                                        "bed": {"actual": 60.5, "target": 60.0}},
                       "job": {"progress": 12.0, "z": -float("inf")}})
    client.post_event({"id": "e1", "type": "print.progress", "payload": {"progress": 12, "odd": [float("nan"), 1]}},
                      snapshot=b"\xff\xd8jpeg")
    status = receiver.statuses()[-1]
    assert status["temperatures"] == {"tool0": {"actual": None, "target": None}, "bed": {"actual": 60.5, "target": 60.0}}
    assert status["job"] == {"progress": 12.0, "z": None}
    assert receiver.events()[-1]["payload"] == {"progress": 12, "odd": [None, 1]}


# -- pictures ------------------------------------------------------------------------------

def test_the_jobs_thumbnail_goes_once_and_webcam_pictures_every_so_often_while_printing(
        receiver, make_publisher, clock, status, tmp_path):
    from tests.support.pictures import gcode_with_thumbnails, png

    preview = png(64, 64)
    gcode = tmp_path / "benchy.gcode"
    gcode.write_text(gcode_with_thumbnails(("thumbnail", 64, 64, preview)))
    status.update(state="Printing", state_id="printing")
    publisher = make_publisher(receiver.url, webcam_every=lambda: 120.0,
                               snapshot_url=lambda: receiver.url + "/webcam/snapshot")
    publisher.request_thumbnail("Bénchy 1.gcode", str(gcode))
    publisher.step()
    (sent,) = receiver.of("PUT", "/api/v1/printer/pictures/thumbnail")
    assert sent.body == preview and sent.headers["Content-Type"] == "image/png"
    assert sent.headers["X-Herald-Job-File"] == "B%C3%A9nchy%201.gcode"  # percent-encoded UTF-8
    assert len(receiver.of("PUT", "/api/v1/printer/pictures/webcam")) == 1
    assert receiver.of("PUT", "/api/v1/printer/pictures/webcam")[0].body == receiver.snapshot
    clock.now += 60
    publisher.step()
    assert len(receiver.of("PUT", "/api/v1/printer/pictures/thumbnail")) == 1  # once per job
    assert len(receiver.of("PUT", "/api/v1/printer/pictures/webcam")) == 1
    clock.now += 61
    assert publisher.step() <= 120.0
    assert len(receiver.of("PUT", "/api/v1/printer/pictures/webcam")) == 2
    # Idle: no webcam pictures, however long.
    status.update(state="Operational", state_id="operational")
    publisher.request_status()
    clock.now += 1000
    publisher.step()
    clock.now += 1000
    publisher.step()
    assert len(receiver.of("PUT", "/api/v1/printer/pictures/webcam")) == 2


def test_pictures_are_off_by_default_and_a_refused_one_is_dropped(receiver, make_publisher, status, tmp_path):
    status.update(state="Printing", state_id="printing")
    receiver.routes[("PUT", "/api/v1/printer/pictures/thumbnail")] = lambda r: (415, {"error": "picture_not_image"})
    publisher = make_publisher(receiver.url, snapshot_url=lambda: receiver.url + "/webcam/snapshot")
    from tests.support.pictures import gcode_with_thumbnails, png

    gcode = tmp_path / "a.gcode"
    gcode.write_text(gcode_with_thumbnails(("thumbnail", 8, 8, png(8, 8))))
    publisher.request_thumbnail(None, str(gcode))
    publisher.step()
    assert len(receiver.of("PUT", "/api/v1/printer/pictures/thumbnail")) == 1
    assert "X-Herald-Job-File" not in receiver.of("PUT", "/api/v1/printer/pictures/thumbnail")[0].headers
    assert publisher.state()["last_error"] is None  # a picture is a nicety, not a failure
    assert receiver.of("PUT", "/api/v1/printer/pictures/webcam") == []  # webcam_every defaults to off
