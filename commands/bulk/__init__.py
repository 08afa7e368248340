"""The CLI side every bulk command shares (diff-tables, backup-table, restore, backfills):
planning segments (``plan``), running and waiting (``run``), progress (``progress``) and giving up
when no worker serves the queue (``watchdog``)."""
