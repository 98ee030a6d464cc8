"""ARK's site tooling: the site admin's `ark` command (ark.cli)."""
