"""tap-rewards: a Singer tap for the rewards API (seed 004)."""
