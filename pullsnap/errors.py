"""Typed errors and the exit codes both commands share.

Every expected failure is a `PullsnapError`: its class carries the exit
code cron and systemd see, its docstring is its message template (borg's
helpers/errors.py does the same), and one top-level handler in each CLI
prints it as a single line on stderr; nothing expected prints a traceback.
The classes come in two tiers:

- A *kind* per exit code (`UsageError`, `RunFailed`, `Refused`,
  `Unreachable`, `Timeout`, `Locked`, `NoSpace`, `TooSoon`, ...) has the
  template "{}": the raise site writes the whole line, because what it
  must say (the path, the setting, the command that fixes it) is known
  only there.  Most raise sites are of this tier.
- A *specific error* has a real template and derives from its kind.  One
  is made when the same failure is raised in more than one place, or when
  a caller or a test must tell it apart (`NoSuchHost`, `NoSuchSnapshot`,
  `HandoffTimeout`, the `DeletionRefused` family); a raise site uses it
  wherever it fits, never its kind with the same words.  A failure of one
  module only may be declared there (`LauncherError`, `RemoteShellWord`,
  `MountNamespaceError`), deriving from its kind or, for exit status 1,
  from `PullsnapError` itself.

Pure parsers below the boundaries raise `ValueError` (configvalues.Invalid
is one): the configuration loader turns it into `ConfigError`, the command
lines into their usage error.  A `ValueError` elsewhere is a broken
invariant of validated input, not a message for an operator.

Exit codes (README "Exit codes" repeats this table):

    0  OK           the run succeeded, a good snapshot exists
    1  FAILED       the run failed (rsync error, unexpected end of a child)
    2  USAGE        bad command line or configuration
    3  PARTIAL      snapshot made, but some files could not be read
    4  LOCKED       another run for the same host is in progress
    5  NO_SPACE     not enough free space, even after pruning
    6  REFUSED      a peer was refused: gate, handoff, host binding, host key
    7  UNREACHABLE  the other side could not be reached
    8  TIMEOUT      a deadline passed
    9  TOO_SOON     the host's minimum interval between runs has not passed
   10  SUSPECT      snapshot made but marked suspect: it shrank too much (kept,
                    not counted as good; `grabber accept` clears it)
   11  STALE        `grabber status`: a host's newest good snapshot is older
                    than its max_age (or it has none)
   12  HOOK_FAILED  initiator: a destination's `before` hook failed (no backup
                    was tried), or its `after` hook failed
"""

from __future__ import annotations

OK = 0
FAILED = 1
USAGE = 2
PARTIAL = 3
LOCKED = 4
NO_SPACE = 5
REFUSED = 6
UNREACHABLE = 7
TIMEOUT = 8
TOO_SOON = 9
SUSPECT = 10
STALE = 11
HOOK_FAILED = 12

EXIT_NAMES = {
    OK: "ok",
    FAILED: "failed",
    USAGE: "usage",
    PARTIAL: "partial",
    LOCKED: "locked",
    NO_SPACE: "no-space",
    REFUSED: "refused",
    UNREACHABLE: "unreachable",
    TIMEOUT: "timeout",
    TOO_SOON: "too-soon",
    SUSPECT: "suspect",
    STALE: "stale",
    HOOK_FAILED: "hook-failed",
}


class PullsnapError(Exception):
    """{}"""

    exit_code = FAILED

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.args = args

    def get_message(self) -> str:
        return (self.__doc__ or "{}").strip().format(*self.args)

    def __str__(self) -> str:
        return self.get_message()


class ConfigError(PullsnapError):
    """{}: {}"""

    exit_code = USAGE


class UsageError(PullsnapError):
    """{}"""

    exit_code = USAGE


class RunFailed(PullsnapError):
    """{}"""

    exit_code = FAILED


class Unreadable(RunFailed):
    """cannot read {}: {}"""


class NoSuchHost(UsageError):
    """no host {!r} in {} (see: {})"""


class NoSuchSnapshot(UsageError):
    """{0} has no snapshot {1!r} (see: {2})"""

    def __init__(self, host: str, name: str, see: str = "") -> None:
        # `see`: the list command naming the configuration in use (hints.py).
        super().__init__(host, name, see or f"grabber list {host}")


class Refused(PullsnapError):
    """{}"""

    exit_code = REFUSED


class HandoffError(Refused):
    """bad handoff: {}"""


class ClientKeyError(HandoffError):
    """bad handoff: client_key {}"""


class GateRefused(Refused):
    """{}"""


class BindingError(Refused):
    """{}"""


class NotAPublicKey(BindingError):
    """that is not an OpenSSH public key"""


class Unreachable(PullsnapError):
    """{}"""

    exit_code = UNREACHABLE


class Timeout(PullsnapError):
    """{}"""

    exit_code = TIMEOUT


class HandoffTimeout(Timeout):
    """the handoff did not arrive in time"""


class Locked(PullsnapError):
    """{}"""

    exit_code = LOCKED


class NoSpace(PullsnapError):
    """{}"""

    exit_code = NO_SPACE


class TooSoon(PullsnapError):
    """{}"""

    exit_code = TOO_SOON


class DeletionRefused(PullsnapError):
    """{}"""


class NotOurSnapshot(DeletionRefused):
    """{}/{} does not look like a pullsnap snapshot"""


class NewestGood(DeletionRefused):
    """{} is the newest good snapshot of {}"""


class NotADirectory(DeletionRefused):
    """{} is not a directory: left alone"""


class HookFailed(PullsnapError):
    """{} hook {}"""

    exit_code = HOOK_FAILED


class CapabilityError(PullsnapError):
    """capabilities: {}"""

    exit_code = FAILED
