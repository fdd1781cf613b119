"""The `signgate` command's offline parts: finding the stack, keeping a token, showing messages."""

from __future__ import annotations

import importlib
import io
import json
import re
import ssl
import stat
from pathlib import Path
from typing import Any

import pytest
import typer.main
from aiokafka import TopicPartition
from aiokafka.errors import (
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)
from rich.console import Console
from typer.testing import CliRunner

from libs.tools.cli import app, render
from libs.tools.cli.app import TailPrinter, TailRecord, hoisted, outbox
from libs.tools.cli.errors import ExitCode, classify
from libs.tools.cli.stack import NoStack, find_bootstrap, save_token, saved_token
from signgate_client import Outcome, OutcomeTimeout
from signgate_client.stream import partitions_of
from signgate_contracts import authentication as auth
from signgate_contracts import encode, otp
from signgate_contracts import identity as idn

runner = CliRunner()


def test_the_bootstrap_given_wins_then_the_environment_then_the_running_stack(tmp_path: Path) -> None:
    """`--bootstrap` beats SIGNGATE_KAFKA_BOOTSTRAP, which beats the `make run` stack file."""
    stack_file = tmp_path / "stack.json"
    stack_file.write_text(json.dumps({"kafka_bootstrap": "127.0.0.1:1111"}))
    environ = {"SIGNGATE_KAFKA_BOOTSTRAP": "127.0.0.1:2222"}
    assert find_bootstrap("127.0.0.1:3333", environ, stack_file) == "127.0.0.1:3333"
    assert find_bootstrap(None, environ, stack_file) == "127.0.0.1:2222"
    assert find_bootstrap(None, {}, stack_file) == "127.0.0.1:1111"


def test_a_kept_token_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """The token file is created with mode 0600 and read back as written."""
    path = tmp_path / "cli-token"
    save_token("tok-123", path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert saved_token(path) == "tok-123"


def test_shown_messages_never_hold_a_secret_and_mask_contacts() -> None:
    """Passwords, codes and tokens print as a mark; phone numbers and emails print masked."""
    shown = [
        render.message_line(idn.AuthenticateUser(user_name="ann@example.com", password="pa55-word-9")).plain,
        render.message_line(auth.VerifyDocumentOtp(package_id="p", order=2, code="493817")).plain,
        render.message_line(otp.OtpDeliveryRequested(package_id="p", order=2, channel="sms",
                                                     destination="+447700900123")).plain,
    ]
    text = "\n".join(shown)
    assert "pa55-word-9" not in text and "493817" not in text and "+447700900123" not in text
    assert "ann@example.com" not in text and render.HIDDEN in text and "+44******0123" in text


def test_send_json_refuses_a_document_that_is_not_a_command() -> None:
    """`send json` with an unknown type exits with bad input (3) before connecting to anything, in one
    stderr line."""
    result = runner.invoke(app, ["--bootstrap", "127.0.0.1:1", "send", "json", '{"type": "nope"}'])
    assert result.exit_code == ExitCode.BAD_INPUT == 3 and result.stdout == ""
    assert result.stderr == "error: not a signgate command: no signgate command has type 'nope'\n"


@pytest.mark.parametrize(("document", "line"), [
    ("not json", "error: invalid JSON: 'not json' is neither JSON nor a file"),
    ('{"type": "identity.authenticate_user", "user_name": "ann"', "error: invalid JSON: Expecting ',' delimiter at line 1 column 58"),
    ('{"type": "identity.authenticate_user", "user_name": "ann", "pasword": "x"}',
     "error: invalid identity.authenticate_user: pasword: no such field; password: Field required"),
    ('{"type": "workflow.share_workflow", "package_id": "p", "reply_too": "x"}',
     "error: invalid workflow.share_workflow: reply_too: no such field"),
    ('{"type": "workflow.add_authentication", "package_id": "p", "body": {"emailId": "ann@example.com", '
     '"authenticationType": "AccessCode", "accessCode": "s3cr"}}',
     "error: invalid workflow.add_authentication: body.accessCode: Value error, must be 6 to 50 characters"),
])
def test_send_json_names_what_is_wrong_with_a_document_in_one_line(document: str, line: str) -> None:
    """Invalid JSON, a misspelt field and a failed check each end with exit 3 and one stderr line naming
    the field, and never the value given (here an access code)."""
    result = runner.invoke(app, ["--bootstrap", "127.0.0.1:1", "send", "json", document])
    assert (result.exit_code, result.stderr, result.stdout) == (3, line + "\n", "")


def test_with_json_anywhere_an_error_is_one_json_object_on_stderr() -> None:
    """`--json` after the subcommand (and `--timeout=` with it) is the root's option: the error comes as one
    JSON object on stderr with the exit code, and stdout stays empty."""
    result = runner.invoke(app, ["send", "json", '{"type": "nope"}', "--json", "--timeout=1"])
    assert result.exit_code == 3 and result.stdout == ""
    assert json.loads(result.stderr) == {"error": "bad_input", "exit_code": 3,
                                         "message": "not a signgate command: no signgate command has type 'nope'"}


def test_the_roots_options_move_to_the_front_wherever_they_stand() -> None:
    """Root options (flags, `--opt value`, `--opt=value`) after a subcommand move before it, in order;
    everything else keeps its place, and nothing after `--` moves."""
    options = {"--json": False, "--timeout": True, "--bootstrap": True}
    args = ["send", "share", "P", "--json", "--timeout", "5", "--code", "1", "--bootstrap=h:1", "--", "--json"]
    assert hoisted(args, options) == ["--json", "--timeout", "5", "--bootstrap=h:1", "send", "share", "P",
                                      "--code", "1", "--", "--json"]


def test_no_subcommand_has_an_option_named_as_a_root_option() -> None:
    """Moving root options forward is safe only while no subcommand takes an option of the same name."""
    root = typer.main.get_command(app)
    names = {name for p in root.params for name in p.opts}
    assert {"--json", "--timeout", "--bootstrap", "--topic-prefix", "--verbose"} <= names

    def options_of(command: Any) -> set[str]:
        own = {name for p in command.params for name in (*p.opts, *p.secondary_opts)}
        return own.union(*(options_of(c) for c in getattr(command, "commands", {}).values()))

    assert not {n for c in root.commands.values() for n in options_of(c)} & names


def test_an_unexpected_failure_is_an_internal_error_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A defect ends with exit 70 and one line naming the exception; --verbose adds its traceback."""
    def broken(path: Path) -> list[dict]:
        raise KeyError("delivered_at")

    monkeypatch.setattr(importlib.import_module("libs.tools.cli.app"), "read_outbox", broken)
    quiet = runner.invoke(app, ["outbox", "--path", str(tmp_path / "x.jsonl")])
    verbose = runner.invoke(app, ["outbox", "--verbose", "--path", str(tmp_path / "x.jsonl")])
    assert quiet.exit_code == verbose.exit_code == ExitCode.INTERNAL == 70
    assert quiet.stderr == "error: internal error: KeyError: 'delivered_at' (--verbose shows the traceback)\n"
    assert "Traceback (most recent call last)" in verbose.stderr


def test_exit_codes_are_distinct_and_each_is_in_the_cli_page() -> None:
    """Every exit code has a number of its own and a row in docs/cli.md's table."""
    assert len({int(code) for code in ExitCode}) == len(ExitCode.__members__)
    readme = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \| {code.name.lower().replace('_', ' ')} \|", readme, re.M), code


@pytest.mark.parametrize(("error", "logged", "code", "line"), [
    (KafkaConnectionError("Unable to bootstrap from [...]"), [ConnectionRefusedError(111, "Connect call failed")],
     ExitCode.UNREACHABLE, "cannot reach the broker at h:9092: [Errno 111] Connect call failed"),
    (KafkaConnectionError("Unable to bootstrap from [...]"), [ssl.SSLCertVerificationError(1, "certificate verify failed")],
     ExitCode.NOT_AUTHORISED, "TLS with the broker failed: certificate verify failed"),
    (KafkaConnectionError("Unable to bootstrap from [...]"), [SaslAuthenticationFailed("wrong password for alice")],
     ExitCode.NOT_AUTHORISED, "not authorised: [Error 58] SaslAuthenticationFailed: wrong password for alice"),
    (TopicAuthorizationFailedError(), [], ExitCode.NOT_AUTHORISED, "not authorised: [Error 29] TopicAuthorizationFailedError"),
    (NoStack("no running stack: start one with `make run`, or pass --bootstrap"), [],
     ExitCode.UNREACHABLE, "no running stack: start one with `make run`, or pass --bootstrap"),
])
def test_connection_failures_are_told_apart_by_what_the_libraries_saw(
        error: BaseException, logged: list[BaseException], code: ExitCode, line: str) -> None:
    """A bare "Unable to bootstrap" is unreachable with the logged reason as its why, or not authorised when
    what failed was TLS, SASL or an ACL."""
    failure = classify(error, logged, broker="h:9092")
    assert failure is not None and (failure.code, str(failure)) == (code, line)


def test_a_late_outcome_is_a_timeout_whatever_was_logged_before() -> None:
    """An outcome that did not come in time is a timeout (6) even when a retried connection logged a TLS
    error earlier; an error of no known kind is left to the internal-error path."""
    late = OutcomeTimeout(Outcome(auth.RequestDocumentOtp(package_id="p", order=1), None), 2.0)
    failure = classify(late, [ssl.SSLError(1, "handshake")])
    assert failure is not None and failure.code == ExitCode.TIMEOUT and "within 2.0s" in failure.why
    assert classify(RuntimeError("bug")) is None


def test_help_and_printed_data_show_brackets_and_colons_as_written(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    """Neither help text nor printed data is read as rich markup or emoji codes: `[bold]` and `:EMAIL:`
    come out as written."""
    monkeypatch.setattr(outbox, "__doc__", "Deliveries [bold]as sent[/bold] to :email: and :EMAIL:.")
    helped = runner.invoke(app, ["send", "register-package", "--help"], env={"COLUMNS": "200"})
    own = runner.invoke(app, ["outbox", "--help"], env={"COLUMNS": "200"})
    path = tmp_path / "sandbox-outbox.jsonl"
    path.write_text(json.dumps({"challenge_id": "c" * 8, "channel": "email", "destination": "[bold]ann@example.com",
                                "code": ":email:", "purpose": "[red]x[/red]",
                                "delivered_at": "2026-01-01T10:00:00.000000+00:00"}) + "\n")
    shown = runner.invoke(app, ["outbox", "--path", str(path)], env={"COLUMNS": "200"})
    assert "ORDER:EMAIL:NAME[:MOBILE]" in helped.stdout
    assert "Deliveries [bold]as sent[/bold] to :email: and :EMAIL:." in own.stdout
    assert all(text in shown.stdout for text in ("[bold]ann@example.com", ":email:", "[red]x[/red]"))
    assert "✉" not in helped.stdout + own.stdout + shown.stdout


def test_outbox_and_tail_print_json_when_asked(tmp_path: Path) -> None:
    """`outbox --json` prints the deliveries as a JSON array; `tail --json` one JSON object per record, in
    time order, with secrets masked."""
    path = tmp_path / "sandbox-outbox.jsonl"
    delivery = {"challenge_id": "c" * 8, "channel": "sms", "destination": "+447700900123", "code": "123456",
                "purpose": "document_opening", "delivered_at": "2026-01-01T10:00:00.000000+00:00"}
    path.write_text(json.dumps(delivery) + "\n")
    listed = runner.invoke(app, ["outbox", "--path", str(path), "--json"])
    command = auth.VerifyDocumentOtp(package_id="p", order=2, code="493817")
    output = io.StringIO()
    TailPrinter(Console(file=output), json_lines=True).show([
        TailRecord("signgate.authentication.commands", encode(command), str(command.correlation_id), 2),
        TailRecord("signgate.authentication.events.dlq", b'{"reason": "invalid: x"}', None, 1)])
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    assert listed.exit_code == 0 and json.loads(listed.stdout) == [delivery]
    assert lines[0] == {"topic": "signgate.authentication.events.dlq", "timestamp": "1970-01-01T00:00:00.001000+00:00",
                        "correlation_id": None, "dead_letter": "invalid: x"}
    assert lines[1]["type"] == "authentication.verify_document_otp" and lines[1]["code"] == render.HIDDEN
    assert "493817" not in output.getvalue()


def test_outbox_lists_the_latest_deliveries(tmp_path: Path) -> None:
    """`outbox --last 1` shows only the newest delivery of the sandbox file."""
    path = tmp_path / "sandbox-outbox.jsonl"
    lines = [{"message_id": f"m{n}", "challenge_id": f"{n}" * 8, "channel": "sms", "destination": "+447700900123",
              "code": f"{n}" * 6, "purpose": "document_opening", "delivered_at": "2026-01-01T10:00:00.000000+00:00"}
             for n in (1, 2)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = runner.invoke(app, ["outbox", "--last", "1", "--path", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "222222" in result.output and "111111" not in result.output


def test_tail_groups_a_batch_by_correlation_in_time_order() -> None:
    """Records of one correlation id print together under one header, each group in time order."""
    first, second = auth.RequestDocumentOtp(package_id="p", order=1), auth.RequestDocumentOtp(package_id="p", order=2)
    records = [
        TailRecord("signgate.authentication.commands", encode(second), str(second.correlation_id), 2),
        TailRecord("signgate.authentication.commands", encode(first), str(first.correlation_id), 1),
        TailRecord("signgate.authentication.events.dlq", b'{"reason": "invalid: x"}', str(first.correlation_id), 3),
    ]
    output = io.StringIO()
    TailPrinter(Console(file=output, width=200)).show(records)
    lines = output.getvalue().splitlines()
    assert [line[:10] for line in lines] == [f"┌ {str(first.correlation_id)[:8]}", "│ 00:00:00", "│ 00:00:00",
                                             f"┌ {str(second.correlation_id)[:8]}", "│ 00:00:00"]
    assert "dead letter: invalid: x" in lines[2]


async def test_a_topic_an_acl_hides_is_not_authorised_and_a_missing_one_is_skipped() -> None:
    """Reading partitions, a topic the broker reports as not authorised (29) raises, naming it, and the CLI
    calls that not authorised; a topic that does not exist (3) is left out."""
    class Admin:
        async def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
            codes = {"p.signgate.workflow.events": 29, "p.gone": 3, "p.signgate.identity.events": 0}
            return [{"topic": t, "error_code": codes[t], "partitions": [{"partition": 0}] if not codes[t] else []}
                    for t in topics]

    assert await partitions_of(Admin(), ["p.gone", "p.signgate.identity.events"]) == [  # type: ignore[arg-type]
        TopicPartition("p.signgate.identity.events", 0)]
    with pytest.raises(TopicAuthorizationFailedError) as raised:
        await partitions_of(Admin(), ["p.signgate.workflow.events", "p.gone"])  # type: ignore[arg-type]
    failure = classify(raised.value)
    assert failure is not None and failure.code == ExitCode.NOT_AUTHORISED
    assert str(failure) == ("not authorised: [Error 29] TopicAuthorizationFailedError: not authorised to describe "
                            "p.signgate.workflow.events")
