"""Log lines are JSON, carry the correlation id, and never carry a credential."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from aiokafka.structs import ConsumerRecord

from libs.runtime.logging import REDACTED, about, configure_logging, get_logger, redact
from libs.runtime.messaging.pipeline import Batch, Pipeline, batch_log_fields, read_envelope
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
    libraries = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
                 for name in ("faststream", "uvicorn", "uvicorn.error")}
    config = structlog.get_config()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (kept, propagate) in libraries.items():
        logging.getLogger(name).handlers[:] = kept
        logging.getLogger(name).propagate = propagate


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


def _record(offset: int, correlation_id: str) -> ConsumerRecord:
    body = f'{{"type": "ledger.deposit", "correlation_id": "{correlation_id}"}}'.encode()
    return ConsumerRecord("t.commands", 0, offset, 0, 0, b"k", body, None, 1, len(body), ())


def test_a_line_about_a_batch_names_its_records_and_a_line_about_a_record_names_only_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """While a batch is handled, a line naming no record carries every record's correlation id; a line
    written while one record is handled carries that record's alone; after the batch, neither."""
    configure_logging("INFO", "json", service="workflow")
    ids = ["00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"]
    records = tuple(_record(n, correlation_id) for n, correlation_id in enumerate(ids))
    batch = Batch(records, tuple(map(read_envelope, records)))
    pipeline = Pipeline(service="workflow", settings=ConnectionSettings(), publisher=None,  # type: ignore[arg-type]
                        outcome_topics={})
    with about(batch_log_fields("workflow", batch)):
        logging.getLogger("aiokafka.consumer").warning("about the batch")
        with pipeline.bound(records[1], batch.envelopes[1]):
            get_logger("signgate.test").info("about one record")
        get_logger("signgate.test").info("about the batch again")
    get_logger("signgate.test").info("idle")

    batch_line, record_line, again, idle = _json_lines(capsys.readouterr().err)
    assert batch_line["correlation_ids"] == ids and "correlation_id" not in batch_line
    assert record_line["correlation_id"] == ids[1] and "correlation_ids" not in record_line
    assert record_line["message_type"] == "ledger.deposit"
    assert again["correlation_ids"] == ids
    assert "correlation_id" not in idle and "correlation_ids" not in idle


def test_a_batch_of_one_record_is_named_by_that_records_ids(capsys: pytest.CaptureFixture[str]) -> None:
    """A line about a batch holding one record carries its correlation id as a line about the record does."""
    configure_logging("INFO", "json", service="workflow")
    record = _record(7, "00000000-0000-0000-0000-00000000000c")
    with about(batch_log_fields("workflow", Batch((record,), (read_envelope(record),)))):
        logging.getLogger("signgate.workflow.broker").info("Received")
    [line] = _json_lines(capsys.readouterr().err)
    assert (line["correlation_id"], line["topic"]) == ("00000000-0000-0000-0000-00000000000c", "t.commands")


def test_uvicorn_and_faststream_lines_are_json_without_colour_codes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loggers that come with a colour handler of their own (FastStream's at import, uvicorn's)
    write through the one JSON renderer, and uvicorn's coloured copy of its message is left out."""
    import faststream  # noqa: F401  (its logger gets its own handler at import)

    for name in ("uvicorn.error", "faststream"):  # as in a fresh process: earlier tests may have tuned them
        monkeypatch.setattr(logging.getLogger(name), "level", logging.INFO)
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
    logging.getLogger("uvicorn.error").addHandler(logging.StreamHandler(sys.stderr))
    configure_logging("INFO", "json", service="identity")
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]", 42, extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"})
    logging.getLogger("faststream").info("FastStream app starting...")
    captured = capsys.readouterr().err
    assert "\x1b" not in captured
    started, starting = _json_lines(captured)
    assert (started["event"], started["logger"]) == ("Started server process [42]", "uvicorn.error")
    assert "color_message" not in started
    assert (starting["event"], starting["logger"]) == ("FastStream app starting...", "faststream")
