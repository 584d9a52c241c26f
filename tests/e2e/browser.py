"""A real browser for the pages the grabber writes: Debian's chromium,
headless; the `chromium` fixture (tests/e2e/conftest.py) installs it once."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import IN_CI


def install_chromium() -> str | None:
    """Debian's chromium, installed on first use (it is large: the suite's
    bootstrap leaves it to this test rather than burden every install)."""
    found = shutil.which("chromium")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                  "-o", "DPkg::Lock::Timeout=300", "chromium"]):  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            return None
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def chromium() -> str:
    found = install_chromium()
    if found is None:
        if IN_CI:
            pytest.fail("chromium could not be installed (apt-get install chromium)")
        pytest.skip("chromium is not installed and could not be installed")
    return found


def browser(chromium: str, profile: str, *args: str) -> subprocess.CompletedProcess:
    """Headless chromium on a page (its own profile, no background traffic)."""
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
