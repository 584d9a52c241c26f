"""Setting up the backup host: authorized_keys lines, the capability launcher
(launcher.c, built and installed by launcher.py), and `grabber check`."""
