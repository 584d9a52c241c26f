"""I/O priority as ionice(1) writes it: `none`, `idle`, `best-effort[:0-7]`,
`realtime[:0-7]` (pure).  The configuration checks it here, and the gate
turns it into the value ioprio_set(2) takes."""

from __future__ import annotations

# linux/ioprio.h: the class sits above IOPRIO_CLASS_SHIFT, the level below.
IOPRIO_CLASSES = {"none": 0, "realtime": 1, "best-effort": 2, "idle": 3}
IOPRIO_CLASS_SHIFT = 13
# ionice(1) from util-linux uses level 4 when a class is given without one.
IOPRIO_DEFAULT_LEVEL = 4


def ioprio_value(spec: str) -> int:
    """`idle`, `none`, `best-effort[:0-7]` or `realtime[:0-7]` as an ioprio value."""
    name, colon, level_text = spec.partition(":")
    if name not in IOPRIO_CLASSES or (colon and name in ("none", "idle")):
        raise ValueError(f"{spec!r} is not none, idle, best-effort[:0-7] or realtime[:0-7]")
    if name in ("none", "idle"):
        level = 0
    elif not colon:
        level = IOPRIO_DEFAULT_LEVEL
    elif len(level_text) == 1 and level_text in "01234567":
        level = int(level_text)
    else:
        raise ValueError(f"{spec!r}: the level must be 0-7")
    return IOPRIO_CLASSES[name] << IOPRIO_CLASS_SHIFT | level
