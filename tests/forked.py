"""Run part of a test in a forked child: to change what only that child
should have (its user, capabilities, mount namespace), never pytest itself."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any


def in_child(body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`body`'s result, from a forked child, as JSON; whatever it raises
    comes back as {"error": ...}.  The child never returns into pytest."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            result = body()
        except BaseException as e:  # report anything to the parent, never run pytest on
            result = {"error": repr(e)}
        try:
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        text = f.read()
    os.waitpid(pid, 0)
    return json.loads(text)
