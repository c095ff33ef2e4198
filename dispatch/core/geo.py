"""Great-circle distances (haversine) between WGS 84 points, in kilometres."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
from numpy.typing import NDArray

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG), the usual choice for haversine


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Straight-line (great-circle) distance between two points, in km."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def haversine_km_many(
    lat0: float, lon0: float, lats: NDArray[np.float64], lons: NDArray[np.float64]
) -> NDArray[np.float64]:
    """`haversine_km` from one point to many at once (arrays of latitudes and longitudes)."""
    phi0, phis = math.radians(lat0), np.radians(lats)
    dphi, dlambda = phis - phi0, np.radians(lons - lon0)
    a = np.sin(dphi / 2) ** 2 + math.cos(phi0) * np.cos(phis) * np.sin(dlambda / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(a))), dtype=np.float64)


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
