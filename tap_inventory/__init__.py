"""tap-inventory: the inventory API (seed 000) as a Singer tap."""
