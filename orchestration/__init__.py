"""Dagster definitions: the five taps as assets, one per stream group (issue 21)."""
