"""Ground utilities every other layer stands on: errors, JSON, time, storage, geometry, security, the HTTP access policy."""
