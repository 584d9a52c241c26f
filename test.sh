#!/bin/sh
# Install what the tests need and run the whole suite (arguments go to pytest,
# e.g. ./test.sh -m security).  Tests that need root run when started as root.
set -eu
cd "$(dirname "$0")"
scripts/bootstrap
exec .venv/bin/python -m pytest "$@"
