"""The bytes of request bodies on disk at once, for the whole process (max-spool-size).

Bodies are spooled before Zope has authenticated anyone: without a cap, a few anonymous
uploads of the largest allowed size fill the disk (a Kubernetes emptyDir: the pod is evicted).
"""


class SpoolBudget:
    """What the process's spooled bodies may hold in all; ``limit`` 0 means no cap.
    Reactor thread only."""

    def __init__(self, limit):
        self.limit = limit
        self.used = 0
        self.refused = 0  # bodies answered 503 because the budget was spent

    def take(self, size):
        """Reserve ``size`` bytes; False (and nothing reserved) when they do not fit."""
        if self.limit and self.used + size > self.limit:
            self.refused += 1
            return False
        self.used += size
        return True

    def give(self, size):
        self.used -= size
