"""`advisor slack` (advisor/slack/cli.py) and the Slack app manifest it runs with."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from advisor.config import PROJECT_ROOT
from tests.slack.slack_mock import BOT_TOKEN


def test_cli_names_missing_secrets(monkeypatch):
    from advisor.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["slack"])
    assert result.exit_code == 2 and "SLACK_BOT_TOKEN" in result.output
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    result = runner.invoke(app, ["slack"])
    assert result.exit_code == 2 and "SLACK_APP_TOKEN" in result.output
    result = runner.invoke(app, ["slack", "--http"])
    assert result.exit_code == 2 and "SLACK_SIGNING_SECRET" in result.output


def test_manifest_asks_for_the_minimum():
    manifest = yaml.safe_load((PROJECT_ROOT / "slack" / "manifest.yml").read_text(encoding="utf-8"))
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "app_mentions:read",
        "chat:write",
        "commands",
        "im:history",
        "channels:history",
        "groups:history",
    }
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_mention", "message.im"]
    assert manifest["features"]["slash_commands"][0]["command"] == "/advisor"
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True
