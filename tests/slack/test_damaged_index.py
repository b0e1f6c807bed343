"""The Slack bot over a damaged index (a damaged copy of the session index): each question gets a
reply saying what is damaged and how to rebuild it, not "something went wrong"."""

from __future__ import annotations

from advisor.advisor import build_advisor
from advisor.slack.messages import SORRY
from tests.slack.conftest import slack_env
from tests.slack.helpers import QUESTION, send_ok
from tests.slack.slack_mock import mention
from tests.test_damaged_index import REBUILD, damaged_index_settings


def test_questions_to_a_damaged_index_get_the_damage_and_the_rebuild_command(
    built_advisor, built_settings, make_settings, tmp_path
):
    settings = damaged_index_settings(built_settings, tmp_path)
    advisor = build_advisor(settings, embedder=built_advisor.embedder)  # the damage is logged
    assert not advisor.ready
    with slack_env(advisor, make_settings, tmp_path) as slack:
        event = mention(QUESTION, ts="1700000301.000100")
        send_ok(slack.sender.send_event(event))

        def replied(mock) -> list:
            return [c for c in mock.replies_in("C0GENERAL", event["ts"]) if c.params.get("text")]

        assert slack.mock.wait_for(lambda m: replied(m), 60)
        [reply] = replied(slack.mock)
        text = reply.params["text"]
        assert "is damaged" in text and REBUILD in text and text != SORRY
        assert str(settings.index_dir) in text

        url = slack.mock.response_url("damaged")
        status, _, _ = slack.sender.send_command(QUESTION, url)
        assert status == 200
        assert slack.mock.wait_for(lambda m: m.calls_to("response_url"), 60)
        [private] = slack.mock.calls_to("response_url")
        assert "is damaged" in private.params["text"] and REBUILD in private.params["text"]
