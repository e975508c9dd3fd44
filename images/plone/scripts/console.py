"""console: an interactive Python prompt with the Zope root bound to ``app``."""
import code

code.interact(banner="txzserver console: the Zope root is `app`; commit with transaction.commit()",
              local={"app": app})  # noqa: F821 (bound by txzserver run)
