"""addzopeuser USER PASSWORD: add a Manager to the Zope root user folder."""
import sys

import transaction

if len(sys.argv) != 3:
    sys.exit("usage: addzopeuser USER PASSWORD")
name, password = sys.argv[1:]
app.acl_users._doAddUser(name, password, ["Manager"], [])  # noqa: F821 (bound by txzserver run)
transaction.commit()
print(f"added Zope user {name} (Manager)")
