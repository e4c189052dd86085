"""The installed reproflow version, at the ground so every layer may read it."""

__version__ = "0.1.0"
