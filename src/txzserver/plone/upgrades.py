"""A Plone site's pending upgrade steps, listed and run without a browser (the plone image's
`upgrade` command and the instances' wait for it, images/plone/scripts/upgrade.py).

What Site Setup offers, in its order: Plone's own upgrade (``portal_migration``, the base
profile's steps up to the version of the code, then Plone's core add-ons), then every installed
profile with pending steps (``portal_setup.listProfilesWithPendingUpgrades``), each upgraded by
``upgradeProfile``. Nothing is committed here: the caller commits once, or aborts (dry run).
"""

from dataclasses import dataclass


class UpgradeError(Exception):
    """The upgrade did not reach the code's versions."""


@dataclass(frozen=True)
class Step:
    profile: str
    source: str
    dest: str
    title: str

    def __str__(self):
        return f"{self.profile} {self.source} -> {self.dest}: {self.title}"


def _version(value):
    """GenericSetup's versions are tuples of strings (or None: any version)."""
    if value is None:
        return "any"
    return ".".join(value) if isinstance(value, (tuple, list)) else str(value)


def plone_steps(site):
    """Plone's own pending steps (portal_migration). A version of the code that no step leads
    to is one pseudo-step: the upgrade would stop short of it."""
    migration = site.portal_migration
    profile = migration.get_profile()
    steps = [Step(profile, info["ssource"], info["sdest"], info["title"])
             for info in migration.list_steps()]
    if not steps and migration.needUpgrading():
        steps.append(Step(profile, _version(migration.getInstanceVersion()),
                          _version(migration.getFileSystemVersion()),
                          "Plone's version, which no upgrade step leads to"))
    return steps


def profile_steps(site):
    """The other installed profiles' pending steps, by profile."""
    setup, base = site.portal_setup, site.portal_migration.get_profile()
    found = {}
    for profile in setup.listProfilesWithPendingUpgrades():
        if profile != base:  # portal_migration's
            found[profile] = [Step(profile, _version(step.source), _version(step.dest), step.title)
                              for step in setup.listUpgrades(profile, simple=True)]
    return {profile: steps for profile, steps in found.items() if steps}


def pending(site):
    """Every pending step of ``site``, in the order ``run`` takes them."""
    return plone_steps(site) + [step for steps in profile_steps(site).values() for step in steps]


def run(site, log):
    """Run the pending steps of ``site``, ``log`` (a callable) told each before it runs; returns
    the steps. Raises UpgradeError when a version of the code is still not reached."""
    ran = plone_steps(site)
    migration, setup = site.portal_migration, site.portal_setup
    if ran:
        for step in ran:
            log(f"running {step}")
        migration.upgrade(swallow_errors=False)
        if migration.needUpgrading():
            raise UpgradeError(
                f"Plone's upgrade stopped at {_version(migration.getInstanceVersion())}, the code "
                f"is at {_version(migration.getFileSystemVersion())}: no upgrade step leads "
                "there (Plone's own steps come with plone.app.upgrade)")
    # listed again: portal_migration has upgraded Plone's core add-ons already
    for profile, steps in profile_steps(site).items():
        for step in steps:
            log(f"running {step}")
        setup.upgradeProfile(profile)
        if setup.listUpgrades(profile):
            raise UpgradeError(f"{profile}: steps still pending after its upgrade")
        ran.extend(steps)
    return ran
