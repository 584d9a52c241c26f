"""Read-only views of the repository for operators: list, status (text, JSON,
Nagios, Prometheus), the HTML report, versions, diff, du.  None changes the
repository."""
