"""What the machine itself can do with the dataset: the floors the tools are
measured against.

    cp -a           a full copy of the tree (restore's floor)
    tar walk        read every byte once: tar cf - | cat >/dev/null
                    (cat, because GNU tar skips reading when writing to /dev/null)
    stat walk       lstat every entry: find -printf
    seq write       dd of as many bytes as the dataset, fdatasync at the end
    ssh setup       `ssh host true` to the loopback sshd
    ssh <cipher>    bytes through one ssh connection per cipher, compression off
    create after delete   making files right after deleting many (ext4 note)
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable

from bench import measure
from bench.stage import Stage

CIPHERS = ("aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com")
MIB = 1024 * 1024


def _sh(stage: Stage, script: str) -> measure.Sample:
    return measure.run(stage.meter, ["sh", "-c", script])


def cp_a(stage: Stage, dest: str) -> measure.Sample:
    sample = measure.run(stage.meter, ["cp", "-a", stage.src, dest])
    stage.trash(dest)
    return sample


def tar_walk(stage: Stage) -> measure.Sample:
    return _sh(stage, f"tar cf - -C {shlex.quote(stage.src)} . | cat >/dev/null")


def stat_walk(stage: Stage) -> measure.Sample:
    return _sh(stage, f"find {shlex.quote(stage.src)} -printf '%s %T@\\n' >/dev/null")


def seq_write(stage: Stage, size: int) -> measure.Sample:
    target = stage.path("seqwrite.bin")
    count = max(16, size // (4 * MIB))
    sample = _sh(stage, f"dd if=/dev/zero of={shlex.quote(target)} bs=4M count={count} "
                        "conv=fdatasync status=none")  # fmt: skip
    os.unlink(target)  # one large file: a handful of extents, not many inodes
    return sample


def ssh_setup(stage: Stage) -> measure.Sample:
    return measure.run(stage.meter, [*stage.host_ssh(), "root@127.0.0.1", "true"])


def ssh_throughput(stage: Stage, cipher: str, size: int) -> measure.Sample:
    ssh = " ".join(shlex.quote(w) for w in stage.host_ssh())
    mib = max(64, size // MIB)
    sink = f"{ssh} -c {cipher} -o Compression=no root@127.0.0.1 'cat >/dev/null'"
    return _sh(stage, f"dd if=/dev/zero bs=1M count={mib} status=none | {sink}")


def make_files(directory: str, count: int) -> None:
    os.makedirs(directory)
    for i in range(count):
        sub = os.path.join(directory, f"d{i % 100:02d}")
        if i < 100:
            os.mkdir(sub)
        with open(os.path.join(sub, f"f{i}"), "wb") as f:
            f.write(b"x" * 512)


def create_after_delete(stage: Stage, count: int, deleted: int) -> tuple[float, float]:
    """(seconds to create `count` files normally, right after deleting `deleted`)."""
    import shutil
    import time

    def timed(fn: Callable[[], None]) -> float:
        os.sync()
        started = time.monotonic()
        fn()
        os.sync()
        return time.monotonic() - started

    calm = timed(lambda: make_files(stage.path("create-calm"), count))
    make_files(stage.path("to-delete"), deleted)
    os.sync()
    shutil.rmtree(stage.path("to-delete"))
    after = timed(lambda: make_files(stage.path("create-after"), count))
    for name in ("create-calm", "create-after"):
        stage.trash(stage.path(name))
    return calm, after
