"""The benchmark: pullsnap against rsync, rsnapshot, borg and restic on one
seeded dataset, on the same disk, in one run (`./bench/run.sh`).

    dataset.py      the seeded tree and its reversible small change
    measure.py      wall and CPU time of a step (a cgroup holds every process)
    contenders.py   each tool's backup, restore and repository
    stage.py        the lab (pullsnap's two roles) and the backed-up host's sshd
    verify.py       a restored tree against the source, every attribute
    limits.py       what the machine itself can do: cp -a, walks, writes, ssh
    report.py       results.json and the Markdown table (pure)
    cli.py          the run: scenarios x repetitions x contenders
"""
