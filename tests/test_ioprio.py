"""ionice(1)'s syntax (ioprio.py, pure): what the configuration accepts is
what the gate can set."""

from __future__ import annotations

import pytest

from pullsnap import configvalues, ioprio


@pytest.mark.parametrize(
    "spec, value",
    [("none", 0), ("idle", 3 << 13), ("best-effort", 2 << 13 | 4), ("best-effort:7", 2 << 13 | 7),
     ("realtime:0", 1 << 13)],
)  # fmt: skip
def test_ioprio_values(spec: str, value: int) -> None:
    assert ioprio.ioprio_value(spec) == value
    assert configvalues.ionice(spec) == spec


@pytest.mark.parametrize("spec", ["", "idle:3", "none:0", "best-effort:8", "realtime:", "rt"])
def test_bad_specs_are_refused_by_both(spec: str) -> None:
    with pytest.raises(ValueError):
        ioprio.ioprio_value(spec)
    with pytest.raises(configvalues.Invalid, match="must be none, idle"):
        configvalues.ionice(spec)
