"""Ground layer: pure functions over values (no I/O): stable hashes and typed JSON of Python values,
URL validation, secret names, redaction and scrubbing. See docs/architecture.md."""
