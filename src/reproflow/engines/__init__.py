"""Engine adapters: each maps one workflow engine's runs and tasks onto the recorder.
See docs/architecture.md, "Adding an engine"."""
