"""The `signgate` command's offline parts: finding the stack, keeping a token, showing messages."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from libs.tools.cli import app, render
from libs.tools.cli.app import TailPrinter, TailRecord
from libs.tools.cli.stack import find_bootstrap, save_token, saved_token
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
    """`send json` with an unknown type exits with 2 before connecting to anything."""
    result = runner.invoke(app, ["--bootstrap", "127.0.0.1:1", "send", "json", '{"type": "nope"}'])
    assert result.exit_code == 2 and "not a signgate command" in result.output


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
