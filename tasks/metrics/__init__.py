"""Prometheus metrics: serving a collector (``serve``) and the workers' collector (``cluster``)."""
