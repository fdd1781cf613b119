"""The generated references in docs/ match the code, and say what the code does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from libs.runtime.service import ServiceSettings
from libs.runtime.settings import ConnectionSettings
from libs.tools import docs
from libs.tools.provision import ProvisionSettings
from signgate_contracts.schemas import message_type
from signgate_contracts.topics import TOPICS


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return docs.generated_files()


def test_committed_docs_are_up_to_date(generated: dict[str, str]) -> None:
    """The committed files under docs/ are exactly what `make docs` writes from the current code."""
    stale = docs.stale_files(docs.DOCS_DIR, generated)
    assert not stale, f"docs out of date: {', '.join(stale)}; run `make docs` and commit the result"


def test_generation_ignores_the_environment(
    generated: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deployment settings in the environment do not leak into the generated documents."""
    monkeypatch.setenv("SIGNGATE_KAFKA_BOOTSTRAP", "kafka.internal:9093")
    monkeypatch.setenv("SIGNGATE_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("SIGNGATE_IDENTITY_LOCKOUT_THRESHOLD", "9")
    assert docs.generated_files() == generated


def test_check_fails_on_a_stale_directory_and_passes_once_written(
    generated: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--check` exits 1 naming what is out of date, and 0 after the documents are written."""
    assert docs.main([str(tmp_path), "--check"], generate=lambda: generated) == 1
    assert "out of date: messages.md" in capsys.readouterr().out
    assert docs.main([str(tmp_path)], generate=lambda: generated) == 0
    assert (tmp_path / "asyncapi" / "vendor" / "react-component-3.1.5.js").is_file()
    assert docs.main([str(tmp_path), "--check"], generate=lambda: generated) == 0


def test_the_catalogue_has_every_topic_and_message_type(generated: dict[str, str]) -> None:
    """The message catalogue has a section for every topic and every message type of the contracts."""
    catalogue = generated["messages.md"]
    for topic in TOPICS:
        assert f"### `{topic.name}`" in catalogue
        for message in topic.messages:
            assert f"### `{message_type(message)}`" in catalogue


def test_every_documented_variable_is_read_by_its_settings_class(
    generated: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting a documented integer variable changes the setting it documents, for every class."""
    services = list(docs.service_settings().values())
    nested = {n for cls in services for n in docs.nested_settings(cls)}
    classes = [ConnectionSettings, ProvisionSettings, *services, *nested]
    documented = re.findall(r"^\| `(SIGNGATE_[A-Z0-9_<>]+)` \| integer", generated["settings.md"], re.M)
    assert documented
    checked = 0
    for template in documented:
        for cls in classes:
            variable = template.replace("SIGNGATE_<SERVICE>_", docs.env_prefix(cls))
            name = variable.removeprefix(docs.env_prefix(cls)).lower()
            if not variable.startswith(docs.env_prefix(cls)) or name not in cls.model_fields:
                continue
            if "<SERVICE>" not in template and name in ServiceSettings.model_fields:
                continue
            default = cls.model_fields[name].default
            with monkeypatch.context() as env:
                env.setenv(variable, str(default + 1))
                assert getattr(cls(), name) == default + 1, variable
            checked += 1
    assert checked >= len(documented)
