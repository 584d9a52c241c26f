"""authorized_keys lines for bound hosts (authorize.py): one host's lines
replaced, every other line kept, the file replaced atomically and private."""

from __future__ import annotations

import os

from pullsnap.grabber.session.binding import authorized_keys_line
from pullsnap.grabber.setup import authorize

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2Wv9CkC0nm1sUWl3kr1NHuDvEUNZJIBY0v0EWX6ly1 x"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOJ3Ewm5bBFXX2DZ3KGwDAYcM4cdA1GXgyo7yEy6Fe0e y"


def test_a_hosts_lines_are_replaced_and_the_rest_kept() -> None:
    web1, web2 = authorized_keys_line("web1", KEY), authorized_keys_line("web2", OTHER)
    text = "# operator's note\n" + web1 + web2 + "ssh-ed25519 AAAA admin-key"
    again = authorized_keys_line("web1", OTHER)
    replaced = authorize.with_host(text, "web1", again)
    assert replaced == "# operator's note\n" + web2 + "ssh-ed25519 AAAA admin-key\n" + again
    assert authorize.with_host(replaced, "web1", None).count("web1") == 0
    assert authorize.with_host(text, "web9", None) == text + "\n"


def test_a_lookalike_is_not_a_bound_line() -> None:
    assert authorize._host_of('command="pullsnap-grabber host=web1" ssh-ed25519 AAAA') == "web1"
    assert authorize._host_of("ssh-ed25519 AAAA pullsnap-grabber host=web1") is None


def test_the_file_is_replaced_whole_and_private(tmp_path) -> None:
    path = tmp_path / "home" / ".ssh" / "authorized_keys"
    owner = (os.getuid(), os.getgid())
    authorize._replace(str(path), "first\n", owner)
    assert path.read_text() == "first\n"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    authorize._replace(str(path), "second\n", owner)
    assert path.read_text() == "second\n" and os.listdir(path.parent) == ["authorized_keys"]
