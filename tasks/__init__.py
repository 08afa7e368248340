"""Shared domain code and Celery task declarations.

The domain modules (``locations``, ``typed_json``, ``dynamo``, ``replication``, ...) import no
broker; the task modules (``replicate``, ...) declare Celery tasks and call into them.
"""
