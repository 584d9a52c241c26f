"""One backup run under the host's lock, in phases (backup.py): admission,
the sanity check, a full disk, the hooks, and the run's record."""
