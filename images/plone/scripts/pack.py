"""pack DAYS for a FileStorage: opened by this process, without starting Zope (no instance may
have it open: FileStorage takes a lock). Blobs no longer referenced are removed too; the packed
away records stay in Data.fs.old, as ZODB does. ZEO and RelStorage are packed by zeopack and
zodbpack (docker-entrypoint.sh)."""
import sys

import ZODB
from ZODB.FileStorage import FileStorage

days = int(sys.argv[1])
storage = FileStorage("/data/filestorage/Data.fs", blob_dir="/data/blobstorage")
db = ZODB.DB(storage)
try:
    db.pack(days=days)
finally:
    db.close()
