"""Country centroids and great-circle distance for the impossible-travel rule.

A sign-in carries only its country (ISO 3166 alpha-2), so travel is measured between country centroids:
coarse, but enough to tell Lisbon from Sydney. Countries not listed here are skipped by the travel rule (the
infrequent-country rule still applies to them). Centroids are approximate geographic centres, in degrees.
"""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0
# Half the Earth's circumference: no two points are further apart.
MAX_DISTANCE_KM = math.pi * EARTH_RADIUS_KM

CENTROIDS: dict[str, tuple[float, float]] = {
    # Americas
    "US": (39.8, -98.6),
    "CA": (56.1, -106.3),
    "MX": (23.6, -102.6),
    "BR": (-14.2, -51.9),
    "AR": (-38.4, -63.6),
    "CL": (-35.7, -71.5),
    "CO": (4.6, -74.3),
    "PE": (-9.2, -75.0),
    "VE": (6.4, -66.6),
    # Europe
    "GB": (55.4, -3.4),
    "IE": (53.4, -8.2),
    "FR": (46.2, 2.2),
    "DE": (51.2, 10.5),
    "NL": (52.1, 5.3),
    "BE": (50.5, 4.5),
    "LU": (49.8, 6.1),
    "CH": (46.8, 8.2),
    "AT": (47.5, 14.6),
    "IT": (41.9, 12.6),
    "ES": (40.5, -3.7),
    "PT": (39.4, -8.2),
    "DK": (56.3, 9.5),
    "NO": (60.5, 8.5),
    "SE": (60.1, 18.6),
    "FI": (61.9, 25.7),
    "IS": (65.0, -19.0),
    "EE": (58.6, 25.0),
    "LV": (56.9, 24.6),
    "LT": (55.2, 23.9),
    "PL": (51.9, 19.1),
    "CZ": (49.8, 15.5),
    "SK": (48.7, 19.7),
    "HU": (47.2, 19.5),
    "RO": (45.9, 25.0),
    "BG": (42.7, 25.5),
    "GR": (39.1, 21.8),
    "HR": (45.1, 15.2),
    "RS": (44.0, 21.0),
    "UA": (48.4, 31.2),
    "BY": (53.7, 27.9),
    "RU": (61.5, 105.3),
    "TR": (39.0, 35.2),
    # Middle East and Africa
    "IL": (31.0, 34.9),
    "SA": (23.9, 45.1),
    "AE": (23.4, 53.8),
    "QA": (25.4, 51.2),
    "IR": (32.4, 53.7),
    "EG": (26.8, 30.8),
    "MA": (31.8, -7.1),
    "NG": (9.1, 8.7),
    "GH": (7.9, -1.0),
    "KE": (0.0, 37.9),
    "ET": (9.1, 40.5),
    "ZA": (-30.6, 22.9),
    # Asia and Oceania
    "KZ": (48.0, 66.9),
    "IN": (20.6, 79.0),
    "PK": (30.4, 69.3),
    "BD": (23.7, 90.4),
    "CN": (35.9, 104.2),
    "HK": (22.3, 114.2),
    "TW": (23.7, 121.0),
    "JP": (36.2, 138.3),
    "KR": (35.9, 127.8),
    "SG": (1.35, 103.8),
    "MY": (4.2, 102.0),
    "TH": (15.9, 101.0),
    "VN": (14.1, 108.3),
    "ID": (-0.8, 113.9),
    "PH": (12.9, 121.8),
    "AU": (-25.3, 133.8),
    "NZ": (-40.9, 174.9),
}


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The great-circle distance between two (latitude, longitude) points, in kilometres."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def country_distance_km(a: str, b: str) -> float | None:
    """The distance between two countries' centroids, or None when either is not known here."""
    first, second = CENTROIDS.get(a.upper()), CENTROIDS.get(b.upper())
    if first is None or second is None:
        return None
    return haversine_km(first, second)
