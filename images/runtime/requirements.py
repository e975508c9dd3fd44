"""Print the run-time requirements of txzserver (with the plone, relstorage and supervisor extras) from
pyproject.toml.

The runtime image installs exactly these, pinned by constraints.txt, so the layer with the
~260 locked packages is rebuilt only when the lock or the dependency list changes.
"""

import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
extras = project["optional-dependencies"]
for requirement in project["dependencies"] + extras["plone"] + extras["relstorage"] + extras["supervisor"] + ["setuptools", "wheel"]:
    print(requirement)
