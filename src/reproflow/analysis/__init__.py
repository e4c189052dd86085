"""What reads whole runs: the report and its score, diff, status, and the public load, list,
replay and probe functions. See docs/architecture.md."""
