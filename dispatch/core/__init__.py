"""Ground utilities every other layer stands on: errors, JSON, time, storage, geometry, security,
the vocabulary and the HTTP access policy."""
