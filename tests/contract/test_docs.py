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


def test_the_catalogue_gives_python_names_beside_wire_names(generated: dict[str, str]) -> None:
    """Where a field's wire name differs from its Python name (BoldSign's camelCase), the row
    names both; AuthenticateUser's rows name AssureSign's alternatives."""
    catalogue = generated["messages.md"]
    assert "| `emailId` | `email_id` |" in catalogue
    assert "| `accessCode` | `access_code` |" in catalogue
    section = catalogue.split("### `identity.authenticate_user`", 1)[1].split("### ", 1)[0]
    assert "Also accepted as `UserName`." in section and "Also accepted as `Password`." in section
    assert "| Python |" not in section  # same names: no Python column


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


# -- the pages written by hand --

ROOT = docs.ROOT


@pytest.mark.parametrize("page", docs.HAND_WRITTEN)
def test_hand_written_pages_name_only_what_the_repository_has(page: str) -> None:
    """Every link, file, make target, module, option, CLI command and variable a page names exists."""
    unfounded = docs.unfounded_references(ROOT / page)
    assert not unfounded, f"{page} names what does not exist: {', '.join(unfounded)}"


def test_the_reference_check_finds_what_does_not_exist(tmp_path: Path) -> None:
    """The check reports a name that is missing and passes the same kind of name that exists."""
    unknown = "SIGNGATE_" + "NO_SUCH_VARIABLE"  # written whole, this file would define it
    (tmp_path / "other.md").write_text("# A heading, with `code`\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-heading-with-code) [gone](nowhere.md) [bad anchor](other.md#nothing)\n"
        "`libs/tools/docs.py` `libs/tools/nowhere.py` `libs/tools/docs.py::unfounded_references`"
        " `libs/tools/docs.py::nothing_of_the_kind` `services/<svc>/handlers.py`\n"
        "`make test` `make nothing` `python -m libs.tools.bench --quick --no-such-option`"
        " `python -m libs.tools.nowhere`\n"
        "`signgate send open|no-such-command` `signgate tail`\n"
        f"`SIGNGATE_KAFKA_BOOTSTRAP` `{unknown}` `SIGNGATE_<SERVICE>_LANES`\n",
        encoding="utf-8",
    )
    assert docs.unfounded_references(page) == sorted(
        [
            "link nowhere.md",
            "link other.md#nothing",
            "file libs/tools/nowhere.py",
            "file libs/tools/docs.py::nothing_of_the_kind",
            "make nothing",
            "python -m libs.tools.bench --no-such-option",
            "python -m libs.tools.nowhere",
            "signgate send no-such-command",
            f"variable {unknown}",
        ]
    )


def test_the_performance_figures_are_ones_make_bench_reports() -> None:
    """Every figure in docs/performance.md's tables is the name of a row `make bench` still prints."""
    page = ROOT / "docs" / "performance.md"
    assert docs._table_figures(page.read_text(encoding="utf-8")), "no figure table found"
    assert docs.unreported_figures(page) == []


def test_a_figure_the_bench_does_not_report_is_found(tmp_path: Path) -> None:
    """A figure the bench has no row for is reported; a formatted part of a row's name matches."""
    page = tmp_path / "performance.md"
    page.write_text(
        "| figure | value | ratio | target | note |\n|---|---|---|---|---|\n"
        "| OTP verification, max sustained (3 replicas) | 1 verif/s | | | |\n"
        "| OTP verification p99 at 1,000/s offered | 1 ms | | | |\n"
        "| a figure nobody measures | 1 | | | |\n",
        encoding="utf-8",
    )
    assert docs.unreported_figures(page) == ["a figure nobody measures"]


def test_every_chaos_and_security_suite_is_in_the_evidence() -> None:
    """docs/evidence.md names every test file of tests/chaos and tests/security."""
    evidence = (ROOT / "docs" / "evidence.md").read_text(encoding="utf-8")
    suites = sorted((ROOT / "tests").glob("chaos/test_*.py")) + sorted(
        (ROOT / "tests").glob("security/test_*.py")
    )
    missing = [str(s.relative_to(ROOT)) for s in suites if f"`{s.relative_to(ROOT)}`" not in evidence]
    assert suites and not missing, f"not in docs/evidence.md: {', '.join(missing)}"


def test_the_readme_is_short_and_links_the_rest() -> None:
    """The README is at most 200 lines and links the architecture, evidence and performance pages."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    for page in ("docs/architecture.md", "docs/evidence.md", "docs/performance.md"):
        assert f"]({page})" in readme, page
