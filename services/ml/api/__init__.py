"""HTTP API of the ML service."""
