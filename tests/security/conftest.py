"""The hostile backup host: the lab's plain account runs tests/security/standin.py."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator

import pytest

from tests.labfixtures import Site

STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin.py")


@pytest.fixture
def hostile(site: Site) -> Iterator[Callable[..., dict]]:
    """Run the real initiator against the stand-in; returns its result.json."""
    lab = site.lab
    pw = __import__("pwd").getpwnam(lab.plain_user)
    outdir = os.path.join(site.root, "hostile")
    os.makedirs(outdir, mode=0o700)
    os.chown(outdir, pw.pw_uid, pw.pw_gid)
    command = f"{sys.executable} -I {STANDIN} {outdir}"
    lab.write_raw_authorized_keys(
        f'restrict,command="{command}" {lab.login_public_key()}\n', user=lab.plain_user
    )
    os.makedirs(site.src, exist_ok=True)
    with open(os.path.join(site.src, "file"), "w") as f:
        f.write("data\n")
    site.configure(connect_back_timeout=30, destination={"user": lab.plain_user})

    def attack(mode: str, **spec) -> dict:
        spec_path = os.path.join(outdir, "spec.json")
        with open(spec_path, "w") as f:
            json.dump({"mode": mode, **spec}, f)
        result_path = os.path.join(outdir, "result.json")
        if os.path.exists(result_path):
            os.unlink(result_path)
        done = site.run("-v")
        with open(result_path) as f:
            result = json.load(f)
        result["initiator"] = {"code": done.returncode, "stdout": done.stdout,
                               "stderr": done.stderr}  # fmt: skip
        result["runtime_left"] = os.listdir(site.runtime)
        return result

    yield attack
