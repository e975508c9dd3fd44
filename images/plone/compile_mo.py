"""Compile the .po files of the installed packages that ship no .mo, at image
build time, as plone-backend's helpers/compile_mo.py: Zope reads only .mo files (unless
zope_i18n_compile_mo_files is set, which compiles at every start). Test folders are skipped.
Usage: python compile_mo.py SITE_PACKAGES"""
import pathlib
import sys

from pythongettext.msgfmt import Msgfmt, PoSyntaxError

compiled = failed = 0
for po in sorted(pathlib.Path(sys.argv[1]).rglob("LC_MESSAGES/*.po")):
    if "tests" in po.parts:
        continue
    mo = po.with_suffix(".mo")
    if mo.exists():
        continue
    try:
        with po.open("rb") as source:
            mo.write_bytes(Msgfmt(source, name=str(po)).get())
        mo.chmod(0o664)  # group 0 may write, as the rest of the venv
        compiled += 1
    except (PoSyntaxError, UnicodeDecodeError, ValueError) as exc:
        print(f"compile_mo: {po}: {exc}", file=sys.stderr)
        failed += 1
print(f"compile_mo: {compiled} .mo files compiled, {failed} failed")
