"""The rsync pull: its argv (pure), running it with its output relayed
(piperun), reading what it writes (rsyncout), and its verdict (pull.judge)."""
