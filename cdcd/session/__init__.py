"""The streaming session's collaborators, each with one job; ``cdcd.pipeline`` drives them.

``build`` assembles a session from the configuration and where it starts;
``relations`` is the per-relation state (encoders, outbox tables, counters) with its
one invalidation; ``transaction`` the open PostgreSQL transaction; ``commits`` the sink
commits (background ones, parts of huge transactions); ``logical`` and ``signals`` the
logical messages and signal-table rows; ``heartbeat`` and ``status`` the periodic records
and standby status updates.
"""
