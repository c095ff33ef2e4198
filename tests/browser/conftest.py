"""Headless Chromium (Debian's package) driven by Playwright's async API on the test's own loop."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def chromium() -> str:
    """The browser's path; the test is skipped, with the reason shown by `-ra`, only when it is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"browser tests need Debian's chromium at {CHROMIUM}; `make test` installs it "
            "(apt-get install chromium), which failed or was not run on this machine"
        )
    return str(CHROMIUM)
