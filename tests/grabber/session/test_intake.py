"""Reading the handoff from stdin (intake.read_handoff): bounded in size and
in time, and nothing read past the body."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time

import pytest

from pullsnap import errors, handoff
from pullsnap.grabber.session import intake


@pytest.fixture(scope="module")
def wanted(tmp_path_factory: pytest.TempPathFactory) -> handoff.Handoff:
    """A handoff as the initiator sends it, with a real one-time key."""
    key = tmp_path_factory.mktemp("key") / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    host_key = " ".join((key.parent / "k.pub").read_text().split()[:2])
    return handoff.Handoff(
        client_key=key.read_text(), host_key=host_key, port=2222, user="pullsnap",
        paths=("/etc", "/home"), excludes=("*.tmp",),
    )  # fmt: skip


@pytest.fixture
def pipe():
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        with contextlib.suppress(OSError):  # a test closed it already
            os.close(fd)


def test_a_handoff_in_one_write_and_nothing_past_it_is_read(pipe, wanted) -> None:
    read_end, write_end = pipe
    os.write(write_end, handoff.encode(wanted) + b"more")
    assert intake.read_handoff(read_end, 5) == wanted
    assert os.read(read_end, 100) == b"more"


def test_a_handoff_that_arrives_in_pieces(pipe, wanted) -> None:
    read_end, write_end = pipe
    data = handoff.encode(wanted)

    def trickle() -> None:
        for i in range(0, len(data), 97):
            os.write(write_end, data[i : i + 97])
            time.sleep(0.001)

    writer = threading.Thread(target=trickle)
    writer.start()
    try:
        assert intake.read_handoff(read_end, 10) == wanted
    finally:
        writer.join()


def test_silence_ends_at_the_deadline(pipe) -> None:
    read_end, _ = pipe
    started = time.monotonic()
    with pytest.raises(errors.HandoffTimeout) as failed:
        intake.read_handoff(read_end, 0.2)
    assert failed.value.exit_code == errors.TIMEOUT
    assert str(failed.value) == "the handoff did not arrive in time"
    assert time.monotonic() - started < 5


def test_a_header_that_never_ends_is_refused_after_a_few_bytes(pipe) -> None:
    read_end, write_end = pipe
    os.write(write_end, b"x" * (handoff.MAX_HEADER + 50))
    with pytest.raises(errors.HandoffError, match="not a pullsnap handoff header"):
        intake.read_handoff(read_end, 5)
    # It stopped reading just past the limit: the rest is still in the pipe.
    assert len(os.read(read_end, 1000)) == 50 - 1


@pytest.mark.parametrize(
    "data, problem",
    [(b"", "ended before its header"), (b"PULLSNAP-HANDOFF 1 10\n", "ended after 0 of 10"),
     (b"PULLSNAP-HANDOFF 1 10\n{}", "ended after 2 of 10")],
)  # fmt: skip
def test_a_handoff_cut_short_is_refused(pipe, data: bytes, problem: str) -> None:
    read_end, write_end = pipe
    os.write(write_end, data)
    os.close(write_end)
    with pytest.raises(errors.HandoffError, match=problem) as failed:
        intake.read_handoff(read_end, 5)
    assert failed.value.exit_code == errors.REFUSED


def test_an_oversized_body_is_refused_before_it_is_read(pipe) -> None:
    read_end, write_end = pipe
    os.write(write_end, f"PULLSNAP-HANDOFF 1 {handoff.MAX_BODY + 1}\n".encode())
    with pytest.raises(errors.HandoffError):
        intake.read_handoff(read_end, 5)
