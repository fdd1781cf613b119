"""The secrets scan the end-to-end tests rely on finds secrets, and not ids or timestamps."""

from __future__ import annotations

import json

from tests.support.scanning import leaks


def test_a_code_in_any_field_is_found() -> None:
    """A code anywhere in a JSON document, or in a plain log line, is reported."""
    event = json.dumps({"type": "x", "detail": {"note": "your code is 482913"}})
    assert leaks([event, "plain 482913 line"], ["482913"]) == [
        ("482913", event), ("482913", "plain 482913 line"),
    ]


def test_timestamps_and_uuids_that_happen_to_contain_the_digits_are_not_leaks() -> None:
    """Microseconds and hex ids that contain the same six digits are not mistaken for the code."""
    event = json.dumps({"at": "2026-11-22T11:52:31.482913Z", "id": "0f482913-1111-4aaa-8bbb-123456789abc"})
    assert leaks([event], ["482913"]) == []


def test_longer_numbers_are_not_a_six_digit_code() -> None:
    """A code inside a longer run of digits (an offset, a size) is not reported."""
    assert leaks([json.dumps({"offset": 14829130})], ["482913"]) == []
