"""Which snapshots stay: the time rules (pure), the free-space guard, and
applying both on disk (prune)."""
