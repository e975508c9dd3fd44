"""upgrade [--dry-run]: run the pending upgrade steps of the Plone site $SITE; --wait SECONDS:
wait until no site has pending steps (the instances' start with UPGRADE_WAIT).

Run by `txzserver run` (``app`` bound). The steps (txzserver.plone.upgrades): Plone's own
(portal_migration), then every installed profile's, each logged, committed once. The lock
(txzserver.zope.upgradelock) is taken before the site is read and held to the commit: a second
run at once waits for the first, then finds nothing pending. --dry-run (or UPGRADE_DRY_RUN)
lists the steps, takes no lock and changes nothing (the transaction is aborted).
UPGRADE_LOCK_TIMEOUT (seconds, 3600): how long a run waits for another's lock;
UPGRADE_LOCK_STALE (seconds, 7200): the age at which a ZODB marker left by a killed run is
taken over. Exit status: 0 done (or nothing pending), 1 an error (message on stderr).
"""
import argparse
import os
import sys
import time

import transaction
from AccessControl.SecurityManagement import newSecurityManager, noSecurityManager
from AccessControl.SpecialUsers import system
from Testing.makerequest import makerequest
from txzserver.plone.upgrades import UpgradeError, pending, run
from txzserver.zope.upgradelock import LockError, upgrade_lock
from zope.component.hooks import setSite
from zope.globalrequest import clearRequest, setRequest

TRUTHY = ("true", "t", "yes", "y", "on", "1")


def say(line):
    print(line, flush=True)


def seconds(name, default):
    value = os.environ.get(name) or default
    try:
        return float(value)
    except ValueError:
        raise SystemExit(f"error: {name} is a number of seconds, not {value!r}") from None


def plone_sites(app):
    from plone.base.interfaces import IPloneSiteRoot
    return [site for site in app.objectValues() if IPloneSiteRoot.providedBy(site)]


def site_of(app, site_id):
    from plone.base.interfaces import IPloneSiteRoot
    if not site_id:
        raise SystemExit("error: upgrade needs SITE, the id of the Plone site")
    site = app[site_id] if site_id and site_id in app.objectIds() else None
    if not IPloneSiteRoot.providedBy(site):
        raise SystemExit(f"error: there is no Plone site /{site_id} (SITE) in this database: "
                         "create-site makes it")
    return site


def listed(site):
    """The pending steps of ``site``, said."""
    setSite(site)
    steps = pending(site)
    if steps:
        say(f"site /{site.getId()}: {len(steps)} upgrade step(s) pending:")
        for step in steps:
            say(f"  {step}")
    return steps


def upgrade(app, site_id, dry_run):
    if dry_run:
        steps = listed(site_of(app, site_id))
        transaction.abort()
        say(f"dry run: {'nothing pending' if not steps else 'nothing run'}, nothing changed")
        return
    site_of(app, site_id)  # a clear error before any lock
    timeout = seconds("UPGRADE_LOCK_TIMEOUT", 3600)
    with upgrade_lock(app._p_jar, say, timeout, stale_after=seconds("UPGRADE_LOCK_STALE", 7200),
                      dsn=os.environ.get("RELSTORAGE_DSN")) as lock:
        transaction.abort()  # read the site as the lock's holder sees it
        site = site_of(app, site_id)
        if not listed(site):
            say(f"site /{site_id}: nothing pending"
                + (" (another run upgraded it while this one waited)" if lock.waited else ""))
            return
        started = time.monotonic()
        try:
            ran = run(site, say)
            lock.clear()
            transaction.get().note(f"upgrade of /{site_id}: {len(ran)} step(s)")
            transaction.commit()
        except BaseException:
            transaction.abort()
            raise
        say(f"site /{site_id}: {len(ran)} upgrade step(s) run and committed in "
            f"{time.monotonic() - started:.1f} s")


def wait(app, limit):
    """Until no Plone site (or only $SITE) has pending steps: polled every 5 s."""
    deadline, site_id = time.monotonic() + limit, os.environ.get("SITE")
    while True:
        transaction.abort()  # a fresh view: the upgrade Job commits elsewhere
        sites = [site_of(app, site_id)] if site_id else plone_sites(app)
        waiting = [site.getId() for site in sites if listed(site)]
        setSite(None)
        if not waiting:
            say("no upgrade step pending: starting")
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"error: upgrade steps still pending in /{', /'.join(waiting)} after "
                             f"{limit:g} s: run the upgrade Job (`upgrade`)")
        say(f"waiting for the upgrade of /{', /'.join(waiting)} (the upgrade Job)")
        time.sleep(5)


def main(app):
    parser = argparse.ArgumentParser(prog="upgrade", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="list the pending steps only")
    parser.add_argument("--wait", type=float, metavar="SECONDS",
                        help="wait until nothing is pending (exit 1 after SECONDS)")
    args = parser.parse_args(sys.argv[1:])
    dry_run = args.dry_run or os.environ.get("UPGRADE_DRY_RUN", "").strip().lower() in TRUTHY
    app = makerequest(app)
    setRequest(app.REQUEST)
    newSecurityManager(None, system)
    try:
        if args.wait is not None:
            wait(app, args.wait)
        else:
            upgrade(app, os.environ.get("SITE", ""), dry_run)
    except (LockError, UpgradeError) as error:
        raise SystemExit(f"error: {error}") from None
    finally:
        transaction.abort()
        setSite(None)
        noSecurityManager()
        clearRequest()


main(app)  # noqa: F821 (bound by txzserver run)
