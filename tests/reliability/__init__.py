"""Reliability: faults, shutdown, fuzzing and abuse against the running server."""
