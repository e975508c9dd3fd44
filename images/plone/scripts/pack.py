"""pack [DAYS]: pack the database, keeping DAYS days of history (default $PACK_DAYS or 7).

With a ZEO client the ZEO server packs; with a FileStorage this process does; with RelStorage
this process runs RelStorage's pack against PostgreSQL (pre-pack, then garbage collection of
unreachable objects and their blobs, as zodbpack does).
"""
import os
import sys

days = float(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PACK_DAYS", "7"))
db = app._p_jar.db()  # noqa: F821 (bound by txzserver run)
print(f"packing {db.getName()}, keeping {days:g} days of history")
db.pack(days=days)
print("packed")
