"""Printed grabber commands name the configuration in use (hints.py)."""

from __future__ import annotations

from pullsnap.grabber import hints


def test_the_default_configuration_is_not_named() -> None:
    assert hints.grabber("/etc/pullsnap/grabber.toml", "allow-run", "web1") == (
        "grabber allow-run web1"
    )
    assert hints.grabber("", "list") == "grabber list"


def test_another_configuration_is_named_and_quoted() -> None:
    assert hints.grabber("/srv/my conf.toml", "accept", "web1", "2026-11-25T021700Z") == (
        "grabber --config '/srv/my conf.toml' accept web1 2026-11-25T021700Z"
    )


def test_a_printed_authorize_binds_a_configuration_that_is_not_the_default() -> None:
    assert hints.authorize("/etc/pullsnap/grabber.toml", "web1", "ssh-ed25519 AAAA") == (
        "grabber authorize web1 'ssh-ed25519 AAAA'"
    )
    assert hints.authorize("/srv/g.toml", "web1", "ssh-ed25519 AAAA", "--user", "opsv") == (
        "grabber --config /srv/g.toml authorize --bind-config --user opsv web1 'ssh-ed25519 AAAA'"
    )


def test_a_bound_configuration_is_compared_as_a_path() -> None:
    assert hints.same_config(None, "/etc/pullsnap/grabber.toml")
    assert hints.same_config("/srv//g.toml", "/srv/g.toml")
    assert not hints.same_config(None, "/srv/g.toml")
    assert not hints.same_config("/srv/a.toml", "/srv/g.toml")
