"""Real values for unchanged TOAST columns: an on-disk cache, or a re-read by primary key.

pgoutput does not send a TOASTed value an UPDATE left alone (tuple kind
``u``, ``UNCHANGED_TOAST``); Debezium emits ``__debezium_unavailable_value``
instead. ``toast.handling.mode`` decides what cdcd does:

- ``placeholder`` (default): the same as Debezium; nothing here runs.
- ``cache``: ``ToastStore`` keeps the last value seen of every large column
  (text of at least ``toast.cache.min.bytes``: only variable-length types get
  that big, and PostgreSQL moves values out of line only above ~2 kB) per
  (table OID, primary key, column) in one SQLite file, bounded by
  ``toast.cache.max.bytes`` (least recently used entries go first).
  ``CacheFiller`` fills ``u`` columns from it before the envelope is built.
- ``refetch``: ``Refetcher`` reads the current value by primary key over the
  catalog connection; it can be newer than the change being emitted.

A miss (or a row gone by the time of a refetch) keeps the placeholder and is
counted.

Modules: ``store`` (the SQLite file), ``plans`` (row keys per relation, the
``ToastHandler`` the pipeline calls), ``cache`` (``CacheFiller``), ``refetch``
(``Refetcher``), ``metrics``, ``check`` (``cdcd check``'s line) and ``factory``
(``toast_handler``: the handler the configuration asks for).
"""