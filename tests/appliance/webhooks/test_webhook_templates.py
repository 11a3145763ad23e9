"""The @param template engine: OctoPrint-Webhooks compatibility and its faults fixed."""

from __future__ import annotations

from appliance.webhooks import templates as tpl
from appliance.webhooks.enqueue import progress_milestone
from appliance.webhooks.retry import RetryPolicy

PARAMS = {
    "topic": "Print Done",
    "job": {"file": {"name": "benchy.gcode", "size": 242038}, "estimatedPrintTime": 476.5},
    "progress": {"completion": 42.5},
    "currentZ": 0.2,
    "offsets": {},
    "extra": {"name": "benchy.gcode", "list": [1, 2]},
    "printer": {"id": "p1", "name": "Prusa & Co"},
    "deviceIdentifier": "@topic",  # a value that looks like a token must not be expanded again
}


def test_lone_token_keeps_its_json_type():
    out = tpl.render({"job": "@job", "z": "@currentZ", "size": "@job.file.size", "offsets": "@offsets",
                      "list": "@extra.list", "first": "@extra.list.0"}, PARAMS)
    assert out == {"job": PARAMS["job"], "z": 0.2, "size": 242038, "offsets": {}, "list": [1, 2], "first": 1}


def test_several_tokens_in_text_and_missing_paths():
    out = tpl.render({"m": "@topic: @job.file.name at @progress.completion%", "gone": "@job.nothing.here",
                      "gone2": "x @meta.hash y"}, {**PARAMS, "meta": {}})
    assert out == {"m": "Print Done: benchy.gcode at 42.5%", "gone": "", "gone2": "x  y"}


def test_token_ends_at_first_character_that_cannot_continue_it():
    assert tpl.render_string("@job.file.name, done.", PARAMS) == "benchy.gcode, done."
    assert tpl.render_string("(@topic)!", PARAMS) == "(Print Done)!"
    assert tpl.render_string("@topic.", PARAMS) == "Print Done."  # a trailing dot is text
    assert tpl.render_string("@topic-x", PARAMS) == "Print Done-x"


def test_email_addresses_and_escapes_stay_text():
    assert tpl.render_string("mail me@example.com", PARAMS) == "mail me@example.com"
    assert tpl.render_string("@@topic is literal", PARAMS) == "@topic is literal"


def test_substituted_text_is_never_expanded_again():
    assert tpl.render_string("id=@deviceIdentifier", PARAMS) == "id=@topic"
    assert tpl.render_string("@deviceIdentifier", PARAMS) == "@topic"


def test_url_values_are_url_encoded():
    url = tpl.render_url("https://x.test/hook/@printer.name?file=@job.file.name&t=@topic", PARAMS)
    assert url == "https://x.test/hook/Prusa%20%26%20Co?file=benchy.gcode&t=Print%20Done"


def test_errors_name_the_position():
    (problem,) = tpl.check_template("body", '{\n  "a": "@topic",\n  "b": "@nope"\n}')
    assert (problem.line, problem.column) == (3, 9)
    assert "@nope" in problem.message
    (bad_json,) = tpl.check_template("body", '{"a": "@topic",\n "b": }')
    assert bad_json.line == 2 and "JSON" in bad_json.message
    (nested,) = tpl.check_template("body", '{"a": {"img": "@snapshot"}}', snapshot_allowed=True)
    assert "top-level" in nested.message
    assert tpl.check_template("body", '{"img": "@snapshot", "to": "me@example.com"}', snapshot_allowed=True) == []
    (header,) = tpl.check_template("headers", '{"X-N": 5}', values_are_strings=True)
    assert "text" in header.message


def test_oauth_values_are_filled_at_send_time():
    rendered = tpl.render({"auth": "Bearer @access_token", "tok": "@access_token", "t": "@topic"}, PARAMS,
                          defer=frozenset())
    assert rendered["t"] == "Print Done"
    done = tpl.resolve_deferred(rendered, {"access_token": "abc"})
    assert done == {"auth": "Bearer abc", "tok": "abc", "t": "Print Done"}


def test_retry_policy_schedule_and_jitter():
    policy = RetryPolicy()
    assert [policy.next_delay(n) for n in range(1, 8)] == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert policy.next_delay(8) is None and policy.next_delay(0) is None
    assert policy.next_delay(1, draw=0.0) == 4.0
    assert abs(policy.next_delay(2, draw=0.999999) - 360) < 0.01
    assert policy.max_attempts == 8


def test_progress_fires_when_crossing_each_multiple():
    assert progress_milestone(10, 9, 10) == 10
    assert progress_milestone(10, 10, 11) is None
    assert progress_milestone(25, 24, 26) == 25
    assert progress_milestone(10, 18, 31) == 30  # a skipped report still fires once, at the highest
    assert progress_milestone(10, 0, 100) is None  # 100% is print.done's job


def test_a_typo_deep_in_a_path_is_caught_like_a_typo_in_its_root():
    def problems(body: str) -> list[str]:
        return [p.message for p in tpl.check_template("body", body)]

    assert problems('{"f": "@job.file.nam"}') == [
        "the event data has no nam in @job.file (did you mean @job.file.name?)"]
    assert problems('{"p": "@progres"}') == ["unknown parameter @progres (write @@ for a literal @)"]
    assert problems('{"s": "@state.flags.printng"}') == [
        "the event data has no printng in @state.flags (did you mean @state.flags.printing?)"]
    assert problems('{"t": "@topic.name"}') == ["@topic has nothing under it, so @topic.name is always empty"]
    assert problems('{"x": "@printer.zzz"}') == ["the event data has no zzz in @printer (it has id, name)"]
    # What the event data does have, including payloads and tool names whose keys vary.
    assert problems('{"a": "@job.file.name @progress.printTimeLeft @state.flags.printing @printer.name",'
                    ' "b": "@extra.reason @offsets.tool0 @job.filament.tool0.length @meta.hash"}') == []
    # The same check in a URL, and none with OAuth on (the token's keys are unknown until sent).
    assert [p.message for p in tpl.check_url("url", "https://x.test/@job.file.nam")] == [
        "the event data has no nam in @job.file (did you mean @job.file.name?)"]
    assert tpl.check_template("body", '{"f": "@job.file.nam"}', allow_unknown=True) == []


def test_every_preset_placeholder_is_named():
    from appliance.webhooks.presets import PRESETS, placeholder_in

    for name in ("home_assistant", "ntfy", "discord", "slack"):
        preset = PRESETS[name]
        assert placeholder_in(preset["url"] + preset["body"]), name
    assert placeholder_in(PRESETS["ntfy"]["body"]) == (
        "still has the preset's placeholder YOUR_TOPIC: replace it with your ntfy topic")
    assert placeholder_in("https://ntfy.sh/") is None and placeholder_in('{"topic": "printers"}') is None
