"""The snapshot repository on disk: snapshot names and records, the trees,
the host lock, and removing trees whatever their owners."""
