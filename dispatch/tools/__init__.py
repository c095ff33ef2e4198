"""Command-line tools beside the server: development services, demo data, the simulator, admin creation."""
