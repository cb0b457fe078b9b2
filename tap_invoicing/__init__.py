"""tap-invoicing: a Singer tap for the invoicing API (seed 002)."""
