"""The shard poller: tails a table's change stream and enqueues per-key tasks."""
