"""dispatch: a real-time dispatch server for tow-truck and trucking fleets."""

__version__ = "0.1.0"
