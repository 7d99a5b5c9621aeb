"""The operator CLI against the embedded ClickHouse on a non-default port, given by flags alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from swarmlens.commands.dispatch import main


@pytest.fixture()
def cli(store, capsys, monkeypatch):
    """Runs `swarmlens ARGS --clickhouse-url URL` with a database of its own but no URL in the
    environment: the flags must be enough."""
    monkeypatch.delenv("SWARMLENS_CLICKHOUSE_URL", raising=False)
    monkeypatch.setenv("SWARMLENS_DATABASE", store.config["SWARMLENS_DATABASE"])
    monkeypatch.setenv("SWARMLENS_OTEL_DATABASE", store.config["SWARMLENS_OTEL_DATABASE"])
    # A data directory without a generated ClickHouse password: the test endpoint has none.
    monkeypatch.setenv("SWARMLENS_DATA_DIR", store.config["SWARMLENS_DATA_DIR"])
    monkeypatch.delenv("SWARMLENS_CLICKHOUSE_PASSWORD", raising=False)
    url = store.config["SWARMLENS_CLICKHOUSE_URL"]
    assert not url.endswith(":8123")

    def run(*args: str, flags_first: bool = False) -> tuple[int, str, str]:
        command, rest = args[0], list(args[1:])
        flags = ["--clickhouse-url", url, "--clickhouse-user", "default"]
        argv = [command, *flags, *rest] if flags_first else [command, *rest, *flags]
        code = main(argv)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_users_list_with_flags_before_or_after_the_action(cli, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    code, out, err = cli("users", "list")
    assert code == 0, err
    assert "alice" in out and "team" in out
    code, out2, _ = cli("users", "list", flags_first=True)
    assert code == 0 and out2 == out
    code, _, err = cli("users", "add-ops", "solo", "--password-stdin")
    assert code == 0, err
    code, out, _ = cli("users", "list")
    assert out.strip().splitlines()[-1].endswith(" users, 1 ops account")


def test_assign_refuses_an_unknown_user_unless_asked_to_create_it(cli, store):
    from swarmlens import accounts

    code, _, err = cli("users", "assign", "alcie", "pro")
    assert code == 1
    assert err.strip() == ("swarmlens users: no user 'alcie': it has no tasks and no configuration; check the "
                           "spelling, or add --create to create it")
    assert accounts.get_user(store.client, store.config, "alcie") is None
    code, out, err = cli("users", "assign", "newcomer", "pro", "--create")
    assert code == 0, err
    assert out.strip() == "user newcomer is on plan pro"
    code, out, _ = cli("users", "assign", "carol", "team")  # a known user needs no flag
    assert code == 0 and "carol is on plan team" in out
    cli("users", "assign", "carol", "pro")


def test_plans_delete_and_list_header(cli):
    code, _, err = cli("plans", "set", "trial", "--quota", "1000")
    assert code == 0, err
    code, out, _ = cli("plans", "list")
    assert out.splitlines()[0].split() == ["plan", "name", "tokens/month", "warn", "at", "users"]
    assert any(line.startswith("trial ") for line in out.splitlines())
    code, _, err = cli("plans", "delete", "team")
    assert code == 1 and "1 user on plan 'team'" in err and "swarmlens users assign" in err
    code, out, err = cli("plans", "delete", "trial")
    assert code == 0 and out.strip() == "plan trial deleted", err
    code, out, _ = cli("plans", "list")
    assert not any(line.startswith("trial ") for line in out.splitlines())
    code, _, err = cli("plans", "delete", "trial")
    assert code == 1 and "no plan 'trial'" in err


def test_prices_list_has_a_header(cli):
    assert cli("prices", "set", "gpt-4o", "--input", "2.5", "--output", "10")[0] == 0
    code, out, _ = cli("prices", "list")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["model", "input", "output"] and "USD per 1M tokens" in lines[0]
    assert lines[1].split() == ["gpt-4o", "2.5000", "10.0000"]
    assert lines[-1] == "1 model priced"


def test_token_revoke_hint_names_a_command_that_exists(cli):
    code, _, err = cli("users", "token", "revoke", "abc")
    assert code == 1 and "`swarmlens users token list`" in err
    code, out, err = cli("users", "token", "list")
    assert code == 0, err
    assert out.strip().endswith("0 tokens")


def test_notify_channels_from_the_cli(cli, no_channels):
    code, out, err = cli("notify", "set", "ops", "--webhook", "https://hooks.example.com/x?key=secret", "--reports")
    assert code == 0, err
    assert "channel ops saved: webhook to https://hooks.example.com/x for every plan" in out
    assert "signing secret (shown only now): " in out
    code, out, _ = cli("notify", "channels")
    assert "hooks.example.com/x" in out and "key=secret" not in out and "alerts+reports" in out
    code, _, err = cli("notify", "set", "bad", "--email", "not-an-address")
    assert code == 1 and "not an e-mail address: 'not-an-address'" in err
    code, _, err = cli("notify", "set", "x", "--email", "a@example.com", "--plan", "nosuchplan")
    assert code == 1 and "no plan 'nosuchplan'" in err
    code, out, _ = cli("notify", "delete", "ops")
    assert code == 0 and "channel ops deleted" in out
    assert cli("notify", "channels")[1].strip().endswith("0 channels")


def test_an_unreachable_server_is_one_line_naming_the_setting(tmp_path):
    from swarmlens_testing.ports import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMLENS_")}
    env["SWARMLENS_DATA_DIR"] = str(tmp_path)
    for command in (["users", "list"], ["plans", "list"], ["prices", "list"], ["notify", "log"], ["db", "status"]):
        r = subprocess.run([sys.executable, "-m", "swarmlens.cli", *command, "--clickhouse-url", url], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1
        assert r.stderr.count("\n") == 1, r.stderr
        assert f"cannot reach ClickHouse at {url} (Connection refused)" in r.stderr
        assert "--clickhouse-url or SWARMLENS_CLICKHOUSE_URL" in r.stderr
        assert "Traceback" not in r.stderr and "urllib3" not in r.stderr and "Exception" not in r.stderr


def test_credentials_by_flags_and_a_refusal_in_one_line(store, make_endpoint, capsys, monkeypatch):
    ep = make_endpoint(password="s3cret-pass")
    monkeypatch.setenv("SWARMLENS_DATABASE", store.config["SWARMLENS_DATABASE"])
    monkeypatch.setenv("SWARMLENS_DATA_DIR", store.config["SWARMLENS_DATA_DIR"])
    monkeypatch.setenv("SWARMLENS_CLICKHOUSE_PASSWORD", "wrong")  # the flag overrides the environment
    assert main(["plans", "list", "--clickhouse-url", ep.url, "--clickhouse-password", "s3cret-pass"]) == 0
    assert "team" in capsys.readouterr().out
    assert main(["plans", "list", "--clickhouse-url", ep.url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"ClickHouse at {ep.url} refused the credentials" in err
    assert "--clickhouse-password" in err and "SWARMLENS_CLICKHOUSE_PASSWORD" in err


def test_notify_test_sends_a_signed_message_every_time(cli, receiver, no_channels, monkeypatch):
    code, out, err = cli("notify", "set", "hook", "--webhook", receiver.url, "--secret", "abc123abc123")
    assert code == 0, err
    for _ in range(2):
        code, out, err = cli("notify", "test", "hook")
        assert code == 0, err
        assert "test message to hook (http://127.0.0.1:" in out and ": sent after 1 attempt(s), HTTP 204" in out
    assert [r["json"]["event"] for r in receiver.requests] == ["test", "test"]
    headers = {k.lower(): v for k, v in receiver.requests[0]["headers"].items()}
    assert headers["x-swarmlens-signature"].startswith("sha256=")
    monkeypatch.setenv("SWARMLENS_NOTIFY_ATTEMPTS", "1")
    receiver.fail_next = 1
    code, out, _ = cli("notify", "test", "hook")
    assert code == 1 and ": failed after 1 attempt(s), gave up after 1 attempts: HTTP 503" in out
    code, _, err = cli("notify", "test", "nope")
    assert code == 1 and "no channel 'nope'" in err
    assert "hook" not in cli("notify", "log")[1]  # test messages are not recorded
