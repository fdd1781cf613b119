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


def test_digits_inside_a_hex_digest_or_an_id_are_not_a_code() -> None:
    """Six digits inside a hex digest or a name made of an id (as chaos runs' digests and sandbox
    ids often hold) are not reported, while the code standing on its own after a word is."""
    digest = json.dumps({"email_digest": "d25354f482913d3988a0a1f07ae2dbfa", "id": "sandbox-482913bc-9a3d"})
    assert leaks([digest], ["482913"]) == []
    assert leaks(["code=482913;"], ["482913"]) == [("482913", "code=482913;")]
