"""The server lifts its open-files limit for many concurrent runs, and says when it cannot.

These change this test process's real ``RLIMIT_NOFILE`` (soft limit only, restored after): no
mock, the kernel's answer is what is checked.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from codeyard.config import MAX_CONCURRENT_RUNS, Settings
from codeyard.server import FILES_BASE, FILES_PER_RUN, raise_open_files_limit


@pytest.fixture
def low_soft_limit() -> Iterator[int]:
    """The soft limit lowered to 256 for the test (the hard limit untouched), then restored."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"the hard open-files limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        yield hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_soft_limit_rises_to_what_is_wanted(low_soft_limit: int) -> None:
    assert raise_open_files_limit(4, want=4096) is None
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (4096, low_soft_limit)


def test_never_lowers_and_never_passes_the_hard_limit(low_soft_limit: int) -> None:
    raise_open_files_limit(1, want=2048)
    raise_open_files_limit(1, want=1024)  # asking for less keeps what there is
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 2048
    if low_soft_limit != resource.RLIM_INFINITY:
        raise_open_files_limit(1, want=low_soft_limit + 1_000_000)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == low_soft_limit


def test_warns_with_the_fix_when_runs_need_more(low_soft_limit: int) -> None:
    runs = 1000
    warning = raise_open_files_limit(runs, want=2048)
    need = FILES_BASE + FILES_PER_RUN * runs
    assert warning is not None
    assert f"ulimit -n {need}" in warning and "max_concurrent_runs" in warning


def test_the_ceiling_allows_a_thousand_concurrent_runs() -> None:
    assert Settings(max_concurrent_runs=1000).max_concurrent_runs == 1000
    with pytest.raises(ValueError, match="less than or equal"):
        Settings(max_concurrent_runs=MAX_CONCURRENT_RUNS + 1)
