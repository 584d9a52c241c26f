"""The receiving rsync's privileges and confinement: --super or --fake-super,
the capabilities it gets, its Landlock rules and its read-only mount namespace."""
