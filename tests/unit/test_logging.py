"""Log lines are JSON, carry the correlation id, and never carry a credential."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from aiokafka.structs import ConsumerRecord

from libs.runtime.logging import REDACTED, configure_logging, get_logger, redact
from libs.runtime.messaging.pipeline import Pipeline, read_envelope
from libs.runtime.settings import ConnectionSettings

SECRET_NAMES = [
    "password",
    "user_password",
    "access_code",
    "accessCode",
    "otp",
    "code",
    "token",
    "access_token",
    "Authorization",
]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Leave the root logger, structlog and its context as they were before the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


def _json_lines(captured: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in captured.splitlines() if line.strip()]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_field_is_masked_at_top_level(name: str) -> None:
    """A credential-named field is replaced by the redaction marker."""
    assert redact({name: "s3cret", "package_id": "pkg-1"}) == {
        name: REDACTED,
        "package_id": "pkg-1",
    }


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_field_is_masked_in_dicts_inside_lists(name: str) -> None:
    """A credential-named field is masked at any depth, including dicts inside lists."""
    value = {"body": {"recipients": [{"order": 1, "auth": {name: "s3cret"}}]}}
    assert redact(value) == {"body": {"recipients": [{"order": 1, "auth": {name: REDACTED}}]}}


def test_other_fields_are_kept() -> None:
    """Fields that are not credential-named keep their values, nested ones included."""
    value = {
        "package_id": "pkg-1",
        "status": 404,
        "error_code": "document_not_found",
        "correlation_id": "c-1",
        "recipients": [{"order": 2, "email": "a***@example.com"}],
        "retries": (1, 2),
    }
    assert redact(value) == {**value, "retries": [1, 2]}


def test_redact_leaves_its_input_unchanged() -> None:
    """Redaction returns a copy and does not mask the caller's own data."""
    value = {"password": "hunter2", "nested": [{"otp": "123456"}]}
    redact(value)
    assert value == {"password": "hunter2", "nested": [{"otp": "123456"}]}


def test_structlog_line_is_json_without_credentials_and_with_correlation_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A structlog call renders one JSON line with the bound correlation id and no credentials."""
    configure_logging("INFO", "json", service="identity")
    structlog.contextvars.bind_contextvars(correlation_id="corr-42")
    get_logger("signgate.test").info(
        "authentication failed", password="hunter2", challenge={"code": "123456", "attempt": 2}
    )
    captured = capsys.readouterr().err
    assert "hunter2" not in captured
    assert "123456" not in captured
    [line] = _json_lines(captured)
    assert line["event"] == "authentication failed"
    assert line["correlation_id"] == "corr-42"
    assert line["service"] == "identity"
    assert line["level"] == "info"
    assert line["password"] == REDACTED
    assert line["challenge"] == {"code": REDACTED, "attempt": 2}


def test_a_line_logged_while_handling_names_the_handling_service(capsys: pytest.CaptureFixture[str]) -> None:
    """In a process that runs several services (the process's logging set up by the last one), a
    line logged while a record is handled names the service handling it; other lines, the process's."""
    configure_logging("INFO", "json", service="otp_dispatch")
    pipeline = Pipeline(service="workflow", settings=ConnectionSettings(), publisher=None,  # type: ignore[arg-type]
                        outcome_topics={})
    record = ConsumerRecord("signgate.workflow.commands", 0, 1, 0, 0, b"k", b"{}", None, 1, 2, ())
    with pipeline.bound(record, read_envelope(record)):
        get_logger("signgate.test").info("handling")
    get_logger("signgate.test").info("idle")

    assert [(line["event"], line["service"]) for line in _json_lines(capsys.readouterr().err)] == [
        ("handling", "workflow"), ("idle", "otp_dispatch")]


def test_stdlib_line_goes_through_the_same_json_renderer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A stdlib log call (as libraries make) renders as JSON with correlation id and extras."""
    configure_logging("INFO", "json")
    structlog.contextvars.bind_contextvars(correlation_id="corr-7")
    logging.getLogger("signgate.identity.broker").info(
        "x", extra={"topic": "signgate.identity.commands", "access_token": "tok-123"}
    )
    captured = capsys.readouterr().err
    assert "tok-123" not in captured
    [line] = _json_lines(captured)
    assert line["event"] == "x"
    assert line["logger"] == "signgate.identity.broker"
    assert line["correlation_id"] == "corr-7"
    assert line["topic"] == "signgate.identity.commands"
    assert line["access_token"] == REDACTED


def test_below_level_lines_are_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    """Lines below the configured level are not written."""
    configure_logging("WARNING", "json")
    get_logger("signgate.test").info("quiet")
    logging.getLogger("signgate.identity.broker").info("quiet too")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_traceback_does_not_show_frame_locals(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A logged exception's traceback does not reveal a credential held in a local variable."""
    configure_logging("INFO", fmt)

    def verify(otp_attempt: str) -> None:
        raise ValueError("wrong code")

    code = "".join(["65", "43", "21"])  # built at run time so the source line does not show it
    try:
        verify(code)
    except ValueError:
        get_logger("signgate.test").exception("verification failed")
    captured = capsys.readouterr().err
    assert "verification failed" in captured
    assert "wrong code" in captured
    assert "654321" not in captured


def test_console_format_also_redacts(capsys: pytest.CaptureFixture[str]) -> None:
    """The human-readable console format masks credentials as the JSON one does."""
    configure_logging("INFO", "console")
    get_logger("signgate.test").info("login", user_password="hunter2", user="ada")
    captured = capsys.readouterr().err
    assert "hunter2" not in captured
    assert "user=ada" in captured
