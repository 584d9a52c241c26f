"""One backup as sshd starts it: the grabber as the login shell of its user.

Who is calling (binding), the handoff on stdin (intake), the one-time key in a
private ssh-agent (agent), the cap on concurrent pulls (slots), and the entry
point that ties them to one run (serve).
"""
