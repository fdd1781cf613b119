"""The stall rule of /readyz: records waiting past a committed offset that does not move."""

from __future__ import annotations

from libs.runtime.observability import Progress


def test_a_partition_is_stalled_only_after_its_committed_offset_stands_still_with_records_waiting() -> None:
    progress = Progress(stall_after=10)
    assert progress.observe({"p": 5}, {"p": 5}, now=0) == (0, [])  # idle: nothing waits
    assert progress.observe({"p": 5}, {"p": 8}, now=100) == (3, [])  # records just arrived
    assert progress.observe({"p": 5}, {"p": 8}, now=109) == (3, [])
    assert progress.observe({"p": 5}, {"p": 9}, now=111) == (4, ["p"])  # read or not, none settled
    assert progress.observe({"p": 7}, {"p": 9}, now=112) == (2, [])  # the offset moved: the clock restarts
    assert progress.observe({"p": 7}, {"p": 9}, now=123) == (2, ["p"])


def test_a_partition_without_a_committed_offset_counts_from_zero_and_others_do_not_hide_it() -> None:
    progress = Progress(stall_after=1)
    assert progress.observe({}, {"a": 2, "b": 0}, now=0) == (2, [])
    assert progress.observe({"b": 0}, {"a": 2, "b": 0}, now=5) == (2, ["a"])
