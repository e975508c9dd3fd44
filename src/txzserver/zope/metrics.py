"""The ZODB's figures for the Prometheus metrics, read at scrape time (the one place the
metrics touch Zope).

Only what the DB keeps in memory, through its public methods: the connection pool (its
configured size, the connections it made and those idle in it) and the object caches (the
configured size per connection, non-ghost objects and all entries over every connection).
``DB.cacheDetailSize`` walks the pool's connections under the DB's lock: a few per process.
Nothing here opens a connection or asks the storage server.
"""

from prometheus_client.core import GaugeMetricFamily

from .health import databases

#: (metric name, help) of each figure, per database.
FIGURES = (
    ("txzserver_zodb_pool_size", "Connections the ZODB keeps in its pool (pool-size)."),
    ("txzserver_zodb_connections", "ZODB connections made by the pool, in use or idle."),
    ("txzserver_zodb_connections_idle", "ZODB connections idle in the pool."),
    ("txzserver_zodb_cache_size", "Objects each connection's cache aims to keep (cache-size)."),
    ("txzserver_zodb_cache_objects", "Non-ghost objects in the caches of all connections."),
    ("txzserver_zodb_cache_entries", "Objects (ghosts included) in the caches of all connections."),
    ("txzserver_zodb_connected", "1 when the storage is connected to its server (ZEO), else 0."),
)


def figures(db):
    """{metric name: number} of one ZODB.DB; the storage's link only when it knows it."""
    detail = db.cacheDetailSize()
    found = {
        "txzserver_zodb_pool_size": db.getPoolSize(),
        "txzserver_zodb_connections": len(db.pool.all),
        "txzserver_zodb_connections_idle": len(db.pool.available),
        "txzserver_zodb_cache_size": db.getCacheSize(),
        "txzserver_zodb_cache_objects": sum(c["ngsize"] for c in detail),
        "txzserver_zodb_cache_entries": sum(c["size"] for c in detail),
    }
    is_connected = getattr(db.storage, "is_connected", None)
    if is_connected is not None:
        found["txzserver_zodb_connected"] = 1 if is_connected() else 0
    return found


class ZodbCollector:
    """A Prometheus collector of ``figures`` for every database Zope opened (label
    ``database``: "main" and the mounts); nothing before Zope has started."""

    def __init__(self, find=databases):
        self.find = find

    def collect(self):
        per_db = {name: figures(db) for name, db in sorted(self.find().items())}
        for name, documentation in FIGURES:
            family = GaugeMetricFamily(name, documentation, labels=["database"])
            for database, found in per_db.items():
                if name in found:
                    family.add_metric([database], found[name])
            if family.samples:
                yield family
