"""The Celery application: ``celery -A worker worker`` consumes every queue the project uses."""

from worker.app import app

__all__ = ["app"]
