"""tap-reporting: a Singer tap for the reporting API (seed 001)."""
