"""The backup host's side: `grabber`.

cli.py, login.py   the two entry points (the console script; the module the
                   capability launcher runs): their module paths are named
                   outside the code, so they stay here
session/           one backup as sshd starts it: binding, handoff, agent, slots
transfer/          the rsync pull: argv, the child's output, the verdict
confine/           the receiving rsync's privileges and confinement
run/               one run's phases under the host lock, and its record
store/             the repository on disk: names, records, trees, locks
retention/         which snapshots stay: time rules, the free-space guard, prune
integrity/         manifests, hashing while rsync runs, verify
views/             read-only views for operators: list, status, report, diff ...
setup/             host setup: authorize, the launcher, `grabber check`
commands/          the operator's command line, apart from the domain
"""
