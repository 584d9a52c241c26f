"""The lab fixtures live in tests/labfixtures.py (a plugin of tests/conftest.py),
so every test directory can use them; `Site` stays importable from here.
The browser the report tests use: tests/e2e/browser.py."""

from tests.e2e.browser import chromium
from tests.labfixtures import Site

__all__ = ["Site", "chromium"]
