"""pullsnap: pull-style hardlinked snapshot backups over a one-shot SSH door."""

__version__ = "0.1.0"
