"""coord."""
