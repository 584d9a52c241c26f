#!/bin/sh
# Set up both roles on this machine (loopback only), back up a sample tree
# twice and show the hardlinked snapshots.  Needs root.  ./demo.sh clean
# removes what it made.
set -eu
cd "$(dirname "$0")"
scripts/bootstrap
exec .venv/bin/python -m lab.demo "$@"
