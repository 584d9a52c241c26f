"""The grabber command lines that hints, fix lines and `problem:` lines print.

An operator runs a printed line as it stands.  A line without `--config`
reads /etc/pullsnap/grabber.toml, so with any other configuration in use
every printed `grabber` command names that file, and a printed `authorize`
binds it into the key's forced command (`--bind-config`): without it the
host's logins would read the default file.
"""

from __future__ import annotations

import os
import shlex

from pullsnap.config import DEFAULT_GRABBER_CONFIG


def config_words(config: str) -> list[str]:
    """`--config FILE` for a configuration other than the default, else nothing
    (nor for one that came from no file: config.grabber_from_dict's "<config>")."""
    if not config or config.startswith("<") or os.path.abspath(config) == DEFAULT_GRABBER_CONFIG:
        return []
    return ["--config", os.path.abspath(config)]


def grabber(config: str, *words: str) -> str:
    """`grabber [--config FILE] WORDS...`, quoted for a POSIX shell."""
    return shlex.join(["grabber", *config_words(config), *words])


def authorize(config: str, host: str, key: str = "<that key>", *more: str) -> str:
    """The `grabber authorize` line that binds `key` to `host` under `config`."""
    bind = ["--bind-config"] if config_words(config) else []
    return grabber(config, "authorize", *bind, *more, host, key)


def same_config(bound: str | None, in_use: str) -> bool:
    """Whether a forced command's `config=` (None: the default) is `in_use`."""
    bound_path = os.path.realpath(bound or DEFAULT_GRABBER_CONFIG)
    return bound_path == os.path.realpath(in_use or DEFAULT_GRABBER_CONFIG)
