"""What every command line shares, ``python -m producer`` and the ``commands`` alike: the
common options and settings set-up (``options``), the transform flags (``transform_options``)
and how errors become one line and an exit status (``exits``). It imports only ``tasks``, so
both the producer and the commands may import it."""
