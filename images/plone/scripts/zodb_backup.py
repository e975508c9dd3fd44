"""The plone image's `backup` and `restore` for ZEO and FileStorage (docs/operators/backups.md).

`backup`: repozo's full or incremental backup of Data.fs (gzip), then the blob directory copied
beside it. Blob files never change once written, so each full backup starts a blob copy of its
own (files unchanged since the previous full are hard links to it, as `rsync --link-dest`) and
the incrementals after it only add files: the copy of a full backup's chain holds every blob of
every point in that chain. Run on a live ZEO server: repozo reads Data.fs read-only up to the last
complete transaction, and the blobs are copied after it, so none that it refers to is missing.
A new full backup when the newest is BACKUP_FULL_DAYS old (or after a pack, repozo's own rule);
the BACKUP_KEEP newest full backups are kept with their incrementals and blobs, older ones go.

`restore [--force] [NAME]`: the newest backup, or NAME (a backup's time stamp, as `--list` shows),
into FILESTORAGE and BLOBSTORAGE. Refused while Data.fs is locked (a ZEO server or Zope has it
open), and without --force when Data.fs or the blob directory holds data.

Exit status: 0 done, 1 refused or failed, 2 misconfigured. Every line is logged to stderr.
"""

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import time

import zc.lockfile

STAMP = re.compile(r"^(\d{4}(?:-\d\d){5})\.(fsz?|deltafsz?|dat|index)$")
FULL, INCREMENTAL = ("fs", "fsz"), ("deltafs", "deltafsz")
BLOB_COPY = re.compile(r"^\d{4}(?:-\d\d){5}$")  # blobs/STAMP: the copy of full backup STAMP


class Refused(Exception):
    """A clear reason to stop with exit status 1."""


class Misconfigured(Exception):
    """A setting to fix: exit status 2."""


def log(message):
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ} {message}",
          file=sys.stderr, flush=True)


def settings():
    """The paths and retention from the environment (the image's defaults)."""
    if os.environ.get("ZODB_STORAGE") == "relstorage":
        raise Misconfigured("RelStorage keeps everything in PostgreSQL: back it up with the "
                            "txzserver/postgresql image's `backup` (pg_dump), not this one")
    root = os.environ.get("BACKUP_DIR") or "/backups"
    values = {"filestorage": os.environ.get("FILESTORAGE") or "/data/filestorage/Data.fs",
              "blobstorage": os.environ.get("BLOBSTORAGE") or "/data/blobstorage",
              "repository": os.path.join(root, "filestorage", "data"),
              "blobs": os.path.join(root, "filestorage", "blobs")}
    for name, default in (("BACKUP_KEEP", "4"), ("BACKUP_FULL_DAYS", "7")):
        value = os.environ.get(name) or default
        if not value.isdigit() or (name == "BACKUP_KEEP" and int(value) < 1):
            raise Misconfigured(f"{name}={value!r}: a whole number"
                                + (" of at least 1" if name == "BACKUP_KEEP" else ""))
        values[name.lower()] = int(value)
    return values


def backups(repository):
    """{stamp: kind} of the repository's data files, oldest first (kind "full" or "incremental")."""
    found = {}
    for name in sorted(os.listdir(repository)) if os.path.isdir(repository) else ():
        match = STAMP.match(name)
        if match and match[2] in FULL + INCREMENTAL:
            found[match[1]] = "full" if match[2] in FULL else "incremental"
    return found


def fulls(repository):
    return [stamp for stamp, kind in backups(repository).items() if kind == "full"]


def age_days(stamp):
    then = datetime.datetime.strptime(stamp, "%Y-%m-%d-%H-%M-%S").replace(tzinfo=datetime.timezone.utc)
    return (datetime.datetime.now(datetime.timezone.utc) - then).total_seconds() / 86400


def repozo(*args):
    """repozo of this venv; its own messages go to stderr, a failure stops us."""
    result = subprocess.run([sys.executable, "-m", "ZODB.scripts.repozo", *args])
    if result.returncode:
        raise Refused(f"repozo {' '.join(args)} failed (exit status {result.returncode})")


def blob_files(directory):
    """(relative path, size) of every file of a blob directory, its tmp/ left out."""
    for parent, dirs, files in os.walk(directory):
        if parent == directory and "tmp" in dirs:
            dirs.remove("tmp")
        for name in files:
            path = os.path.join(parent, name)
            yield os.path.relpath(path, directory), os.path.getsize(path)


def copy_blobs(source, target, previous=None):
    """Add to ``target`` the files of ``source`` it lacks: a hard link to ``previous``'s copy
    when that has the file, else a copy (written aside, then renamed). Returns (copied, bytes,
    linked)."""
    copied = size_copied = linked = 0
    for relative, size in blob_files(source):
        destination = os.path.join(target, relative)
        if os.path.exists(destination) and os.path.getsize(destination) == size:
            continue
        os.makedirs(os.path.dirname(destination), mode=0o700, exist_ok=True)
        earlier = os.path.join(previous, relative) if previous else None
        if earlier and os.path.exists(earlier) and os.path.getsize(earlier) == size:
            try:
                os.link(earlier, destination)
                linked += 1
                continue
            except OSError:
                pass  # another file system: copied below
        shutil.copy2(os.path.join(source, relative), destination + ".part")
        os.replace(destination + ".part", destination)
        copied += 1
        size_copied += size
    return copied, size_copied, linked


def next_second(repository):
    """repozo names its files by the second: wait for a second no file of ours has yet."""
    deadline = time.monotonic() + 5
    while time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime()) in backups(repository):
        if time.monotonic() > deadline:
            raise Refused("the clock does not move past the newest backup's time stamp")
        time.sleep(0.05)


def backup(config):
    source, repository = config["filestorage"], config["repository"]
    if not os.path.isfile(source):
        raise Misconfigured(f"no FileStorage at {source} (FILESTORAGE): mount the ZEO server's "
                            "volume, or set FILESTORAGE and BLOBSTORAGE")
    os.makedirs(repository, exist_ok=True)
    os.makedirs(config["blobs"], exist_ok=True)
    next_second(repository)
    before, old_fulls = backups(repository), fulls(repository)
    full = not old_fulls or age_days(old_fulls[-1]) >= config["backup_full_days"]
    log(f"backing up {source} into {repository} ({'full' if full else 'incremental if possible'})")
    repozo("-B", "-z", "-r", repository, "-f", source, *(["-F"] if full else []))
    after = backups(repository)
    written = [stamp for stamp in after if stamp not in before]
    for stamp in written:
        name = stamp + (".fsz" if after[stamp] == "full" else ".deltafsz")
        log(f"wrote {after[stamp]} backup {name} ({os.path.getsize(os.path.join(repository, name))} bytes)")
    if not written:
        log("Data.fs has not changed since the last backup: no file written")
    chain = fulls(repository)[-1]
    previous = old_fulls[-1] if old_fulls and old_fulls[-1] != chain else None
    target = os.path.join(config["blobs"], chain)
    if os.path.isdir(config["blobstorage"]):
        copied, size, linked = copy_blobs(config["blobstorage"], target,
                                          previous and os.path.join(config["blobs"], previous))
        log(f"blobs: {copied} files copied ({size} bytes), {linked} linked to the previous full "
            f"backup's, in {target}")
    else:
        os.makedirs(target, exist_ok=True)
        log(f"no blob directory at {config['blobstorage']} (BLOBSTORAGE): no blobs copied")
    prune(config)


def prune(config):
    """Keep the BACKUP_KEEP newest full backups, their incrementals and blobs; remove the rest."""
    repository, keep = config["repository"], config["backup_keep"]
    kept = fulls(repository)[-keep:]
    oldest = kept[0]
    for name in sorted(os.listdir(repository)):
        match = STAMP.match(name)
        if match and match[1] < oldest:
            os.remove(os.path.join(repository, name))
            log(f"pruned {name}")
    for name in sorted(os.listdir(config["blobs"])):
        if BLOB_COPY.match(name) and name < oldest:
            shutil.rmtree(os.path.join(config["blobs"], name))
            log(f"pruned blobs/{name}")
    log(f"kept {len(kept)} full backups (BACKUP_KEEP={keep}), the oldest {oldest}")


def holds_data(config):
    """Why the target is not empty, or None."""
    reasons = []
    if os.path.exists(config["filestorage"]) and os.path.getsize(config["filestorage"]):
        reasons.append(f"{config['filestorage']} ({os.path.getsize(config['filestorage'])} bytes)")
    if os.path.isdir(config["blobstorage"]):
        count = sum(1 for name, _ in blob_files(config["blobstorage"]) if name != ".layout")
        if count:
            reasons.append(f"{config['blobstorage']} ({count} files)")
    return " and ".join(reasons) or None


def choose(repository, name):
    """The stamp to restore: ``name`` (a stamp or a data file's name) or the newest."""
    available = backups(repository)
    if not available:
        raise Refused(f"no backup in {repository}")
    if name is None:
        return list(available)[-1]
    stamp = STAMP.match(name)[1] if STAMP.match(name) else name
    if stamp not in available:
        raise Refused(f"no backup named {name} in {repository}; there are: {', '.join(available)}")
    return stamp


def restore(config, name, force):
    stamp = choose(config["repository"], name)
    chain = [full for full in fulls(config["repository"]) if full <= stamp][-1]
    target = config["filestorage"]
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:  # held while restoring: ZEO (or Zope) cannot open Data.fs meanwhile
        lock = zc.lockfile.LockFile(target + ".lock")
    except zc.lockfile.LockError:
        raise Refused(f"{target} is in use (locked): stop the ZEO server (and every Zope process "
                      "that opens it) first") from None
    try:
        reason = holds_data(config)
        if reason and not force:
            raise Refused(f"{reason} holds data: restore --force replaces it")
        if reason:
            log(f"--force: replacing {reason}")
        source = os.path.join(config["blobs"], chain)
        if not os.path.isdir(source):
            raise Refused(f"the blobs of full backup {chain} are missing: {source}")
        log(f"restoring {target} as of {stamp} from {config['repository']}")
        # written and verified aside (-w: sizes and checksums), then put in place
        restoring = target + ".restoring"
        repozo("-R", "-w", "-r", config["repository"], "-o", restoring, "-D", stamp)
        for stale in (target + ".index", target + ".tmp"):
            if os.path.exists(stale):
                os.remove(stale)
        if os.path.exists(restoring + ".index"):
            os.replace(restoring + ".index", target + ".index")
        os.replace(restoring, target)
        blobs = config["blobstorage"]
        if os.path.isdir(blobs):  # emptied, not removed: it may be a mount point
            for entry in os.scandir(blobs):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.remove(entry.path)
        # without a copy a killed backup left half written
        shutil.copytree(source, blobs, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.part"))
        count = sum(1 for _ in blob_files(blobs))
        log(f"restored {target} ({os.path.getsize(target)} bytes) as of {stamp} and {count} blob "
            f"files from blobs/{chain} into {blobs}")
    finally:
        lock.close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="backup|restore", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("backup", "restore"))
    parser.add_argument("name", nargs="?", help="restore: the backup to restore (default: the newest)")
    parser.add_argument("--force", action="store_true", help="restore: replace data that is there")
    parser.add_argument("--list", action="store_true", help="list the backups and exit")
    args = parser.parse_intermixed_args(argv)
    if args.command == "backup" and (args.name or args.force):
        parser.error("backup takes no NAME and no --force")
    try:
        config = settings()
        if args.list:
            for stamp, kind in backups(config["repository"]).items():
                print(stamp, kind)
        elif args.command == "backup":
            backup(config)
        else:
            restore(config, args.name, args.force)
    except Refused as refusal:
        log(f"error: {refusal}")
        return 1
    except Misconfigured as problem:
        log(f"error: {problem}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
