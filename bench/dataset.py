"""The benchmark's source tree: seeded, so every run and every contender sees
the same bytes, names, owners, modes, times, links and xattrs.

    <root>/small/dNN/eNN/fNNNNN    small files, 0..small_max bytes
    <root>/large/bigNN.bin         large incompressible files
    <root>/links/                  symlinks (relative, absolute, dangling)
    hardlinked pairs, files of other owners, user xattrs and ACLs among them

`SmallChange` is the small-change scenario (1% of the small files rewritten,
one large file modified in place, 100 new files) and undoes itself exactly
(contents, mtimes, directory mtimes), so the next contender starts from the
same tree.  The tree is changed in place, never swapped for a copy: borg and
restic notice a changed inode or ctime and would re-read everything.
"""

from __future__ import annotations

import os
import random
import subprocess
from dataclasses import dataclass, field

OTHER_OWNERS = ((4242, 4343), (1001, 1001), (65534, 65534))
MODES = (0o644, 0o644, 0o644, 0o600, 0o640, 0o755)
EPOCH = 1_700_000_000  # file mtimes are EPOCH + a seeded offset, in ns precision
MIB = 1024 * 1024


@dataclass(frozen=True)
class Spec:
    small_files: int
    small_max: int
    large_files: int
    large_min: int
    large_max: int
    top_dirs: int
    sub_dirs: int
    seed: int = 7

    def describe(self) -> str:
        return (
            f"{self.small_files:,} small files (0-{self.small_max // 1024} KiB), "
            f"{self.large_files} large ({self.large_min // MIB}-{self.large_max // MIB} MiB), "
            f"seed {self.seed}"
        )


DEFAULT = Spec(50_000, 8192, 20, 20 * MIB, 60 * MIB, top_dirs=50, sub_dirs=20)
SMALL = Spec(3_000, 8192, 3, 2 * MIB, 6 * MIB, top_dirs=10, sub_dirs=6)
TINY = Spec(1, 16, 0, 0, 0, top_dirs=1, sub_dirs=1)


def small_path(spec: Spec, i: int) -> str:
    return os.path.join(
        "small", f"d{i % spec.top_dirs:02d}", f"e{(i // spec.top_dirs) % spec.sub_dirs:02d}",
        f"f{i:05d}",
    )  # fmt: skip


def _mtime_ns(rng: random.Random) -> int:
    return (EPOCH + rng.randrange(0, 86400 * 365)) * 1_000_000_000 + rng.randrange(1_000_000_000)


def _write(path: str, data: bytes, mode: int, mtime_ns: int) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def _large(path: str, rng: random.Random, size: int, mtime_ns: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = min(left, 4 * MIB)
            f.write(rng.randbytes(chunk))
            left -= chunk
    os.utime(path, ns=(mtime_ns, mtime_ns))


def generate(root: str, spec: Spec) -> None:
    """Create `root` (which must not exist) from `spec`; needs root for owners."""
    rng = random.Random(spec.seed)
    os.makedirs(root)
    dirs: set[str] = set()
    for i in range(spec.small_files):
        rel = small_path(spec, i)
        directory = os.path.join(root, os.path.dirname(rel))
        if directory not in dirs:
            os.makedirs(directory, exist_ok=True)
            dirs.add(directory)
        path = os.path.join(root, rel)
        _write(path, rng.randbytes(rng.randint(0, spec.small_max)), rng.choice(MODES),
               _mtime_ns(rng))  # fmt: skip
        if i % 50 == 7:
            uid, gid = OTHER_OWNERS[i % len(OTHER_OWNERS)]
            os.lchown(path, uid, gid)
        if i % 100 == 13:
            os.setxattr(path, "user.bench", f"file {i}".encode())
        if i % 250 == 21:
            os.link(path, path + ".hardlink")
    os.makedirs(os.path.join(root, "large"))
    for n in range(spec.large_files):
        size = rng.randint(spec.large_min, spec.large_max)
        _large(os.path.join(root, "large", f"big{n:02d}.bin"), rng, size, _mtime_ns(rng))
    links = os.path.join(root, "links")
    os.makedirs(links)
    for n in range(max(1, spec.small_files // 250)):
        target = small_path(spec, rng.randrange(spec.small_files))
        os.symlink(os.path.join("..", target), os.path.join(links, f"rel{n:04d}"))
    os.symlink("/etc/hostname", os.path.join(links, "absolute"))
    os.symlink("does/not/exist", os.path.join(links, "dangling"))
    acl_file = os.path.join(root, small_path(spec, 0))
    subprocess.run(["setfacl", "-m", "u:4242:rw,g:4343:r", acl_file], check=False)
    _set_dir_times(root, rng)


def _set_dir_times(root: str, rng: random.Random) -> None:
    """Bottom-up, after everything inside exists: deterministic directory mtimes."""
    for dirpath, dirs, _ in sorted(os.walk(root), key=lambda t: (-t[0].count(os.sep), t[0])):
        for name in sorted(dirs):
            t = _mtime_ns(rng)
            os.utime(os.path.join(dirpath, name), ns=(t, t), follow_symlinks=False)


@dataclass
class SmallChange:
    """The small-change scenario, applied to a tree made by `generate`, and undone."""

    root: str
    spec: Spec
    new_files: int = 100
    saved: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    saved_dirs: dict[str, int] = field(default_factory=dict)
    saved_large: tuple[str, int, bytes, int] | None = None
    created: list[str] = field(default_factory=list)

    def _modified(self) -> list[str]:
        rng = random.Random(self.spec.seed + 1)
        count = max(1, self.spec.small_files // 100)
        picks = rng.sample(range(self.spec.small_files), count)
        return [os.path.join(self.root, small_path(self.spec, i)) for i in sorted(picks)]

    def _new_paths(self) -> list[str]:
        return [
            os.path.join(self.root, os.path.dirname(small_path(self.spec, n)), f"new{n:03d}")
            for n in range(self.new_files)
        ]

    def apply(self) -> None:
        rng = random.Random(self.spec.seed + 2)
        for path in self._modified():
            st = os.lstat(path)
            with open(path, "rb") as f:
                self.saved[path] = (f.read(), st.st_mtime_ns)
            data = rng.randbytes(max(1, st.st_size))
            with open(path, "wb") as f:
                f.write(data)
            later = st.st_mtime_ns + 86400 * 1_000_000_000
            os.utime(path, ns=(later, later))
        large = os.path.join(self.root, "large", "big00.bin")
        if os.path.exists(large):
            st = os.stat(large)
            offset = st.st_size // 2
            with open(large, "r+b") as f:
                f.seek(offset)
                old = f.read(MIB)
                f.seek(offset)
                f.write(rng.randbytes(len(old)))
            self.saved_large = (large, offset, old, st.st_mtime_ns)
            later = st.st_mtime_ns + 86400 * 1_000_000_000
            os.utime(large, ns=(later, later))
        for path in self._new_paths():
            parent = os.path.dirname(path)
            self.saved_dirs.setdefault(parent, os.lstat(parent).st_mtime_ns)
            _write(path, rng.randbytes(rng.randint(0, self.spec.small_max)), 0o644,
                   EPOCH * 1_000_000_000 + 500 * 86400 * 1_000_000_000)  # fmt: skip
            self.created.append(path)
        for parent, mtime in self.saved_dirs.items():
            # New entries set a directory's mtime to now: make it the same every time.
            later = mtime + 86400 * 1_000_000_000
            os.utime(parent, ns=(later, later))

    def revert(self) -> None:
        for path in self.created:
            os.unlink(path)
        self.created.clear()
        for path, (data, mtime) in self.saved.items():
            with open(path, "wb") as f:
                f.write(data)
            os.utime(path, ns=(mtime, mtime))
        self.saved.clear()
        if self.saved_large is not None:
            path, offset, old, mtime = self.saved_large
            with open(path, "r+b") as f:
                f.seek(offset)
                f.write(old)
            os.utime(path, ns=(mtime, mtime))
            self.saved_large = None
        for parent, mtime in self.saved_dirs.items():
            os.utime(parent, ns=(mtime, mtime))
        self.saved_dirs.clear()
