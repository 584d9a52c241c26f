"""The lab fixtures live in tests/labfixtures.py (a plugin of tests/conftest.py),
so every test directory can use them; `Site` stays importable from here."""

from tests.labfixtures import Site

__all__ = ["Site"]
