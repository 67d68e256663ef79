"""Many hosts, one corpus: each host's store shared through a PostgreSQL table.

Every host keeps its LMDB store as the local index it drafts from; the table
(``table.SharedTable``) is the shared log of outputs that every host appends to and
follows. ``replica.Replica`` joins one store to it: it publishes what the host learns and
applies what the others publish, with its cursors and its queue kept in the store, so
PostgreSQL going away never blocks or slows generation and a restart loses nothing.
``SUFDEC_SHARE`` (or ``--share``) names the database; the CLI reads it, nothing here does.
psycopg is needed only once a table is opened.
"""

from sufdec.share.replica import Replica, SyncSummary, database_key
from sufdec.share.table import Retention, SharedTable, ShareError, TableSummary, shown_url

__all__ = [
    "Replica",
    "Retention",
    "SharedTable",
    "ShareError",
    "SyncSummary",
    "TableSummary",
    "database_key",
    "shown_url",
]
