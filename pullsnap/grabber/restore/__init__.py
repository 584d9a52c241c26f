"""`grabber restore`: copying a snapshot's files back with the flags its
mode needs (`plan.py`, pure), running rsync (`copy.py`), and checking what
arrived against the snapshot's manifest and metadata (`check.py`)."""
