"""Per-snapshot content manifests: hashing while rsync runs (prehash),
building and reading manifests, and `grabber verify`."""
