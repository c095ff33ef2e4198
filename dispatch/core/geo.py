"""Great-circle distances (haversine) between WGS 84 points, in kilometres."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG), the usual choice for haversine


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Straight-line (great-circle) distance between two points, in km."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def distance_km(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Distance between two mappings with `lat` and `lon`."""
    return haversine_km(a["lat"], a["lon"], b["lat"], b["lon"])


def path_km(points: Iterable[Mapping[str, float]]) -> float:
    """Length of a path through the points, in order."""
    total, previous = 0.0, None
    for point in points:
        if previous is not None:
            total += distance_km(previous, point)
        previous = point
    return total
