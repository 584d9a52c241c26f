#!/bin/sh
# The benchmark in one command (needs root): ./bench/run.sh [--small] [--reps N] [--tools a,b]
# --small is the CI smoke size (under two minutes, no timing assertions).
# Installs the peers from Debian packages when missing; a peer that cannot
# be installed is skipped and named in the output.
set -eu
cd "$(dirname "$0")/.."
scripts/bootstrap
PEERS="rsnapshot borgbackup restic"
missing=""
for pkg in $PEERS; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ] && [ "$(id -u)" = 0 ]; then
    echo "bench: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    { apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 &&
        apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; } ||
      echo "bench: could not install$missing; those contenders are skipped" >&2; }
fi
# pullsnap as operators install it: a plain install, not the editable one
# the tests use (its import hook costs every Python start about 8 ms, and
# initiator, grabber and gate each start one per run).  Rebuilt each time,
# so it is the code of this checkout.
if { [ -x .venv-bench/bin/python ] || /usr/bin/python3 -m venv .venv-bench; } &&
    .venv-bench/bin/pip install -q --disable-pip-version-check . >/dev/null 2>&1 &&
    .venv-bench/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps . \
        >/dev/null 2>&1; then
    exec .venv-bench/bin/python -m bench "$@"
fi
echo "bench: could not build .venv-bench; measuring the editable install in .venv" >&2
exec .venv/bin/python -m bench "$@"
