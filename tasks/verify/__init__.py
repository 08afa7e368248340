"""Continuous verification: sweeps proving, pass after pass, that a replica equals t(primary)."""
