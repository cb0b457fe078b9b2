"""tap-bookings: a Singer tap for the bookings API (seed 003)."""
