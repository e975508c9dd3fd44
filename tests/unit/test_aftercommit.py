"""txzserver.aftercommit: handed over once, in order, only after a successful commit; forgotten
on abort, on a failed commit and on a savepoint rollback. With the real ``transaction`` package."""

import logging

import pytest
import transaction

from txzserver.aftercommit import AfterCommitQueue


@pytest.fixture
def delivered():
    got = []
    yield got
    transaction.abort()


@pytest.fixture
def queue(delivered):
    return AfterCommitQueue("test", delivered.append)


class Failing:
    """A resource whose vote fails: the commit fails after the queue was filled."""

    def abort(self, txn):
        pass

    tpc_begin = commit = tpc_finish = tpc_abort = abort

    def tpc_vote(self, txn):
        raise RuntimeError("vote failed")

    def sortKey(self):
        return "failing"


def test_commit_hands_everything_over_once_in_order(queue, delivered):
    transaction.begin()
    for item in "abc":
        queue.pending().append(item)
    assert delivered == []  # nothing before the commit
    transaction.commit()
    assert delivered == [["a", "b", "c"]]
    transaction.commit()  # a new, empty transaction: nothing more
    assert delivered == [["a", "b", "c"]]


def test_abort_and_failed_commits_hand_over_nothing(queue, delivered):
    transaction.begin()
    queue.pending().append("aborted")
    transaction.abort()
    transaction.begin()
    queue.pending().append("failed")
    transaction.get().join(Failing())
    with pytest.raises(RuntimeError):
        transaction.commit()
    transaction.abort()
    assert delivered == []


def test_a_rolled_back_savepoint_forgets_what_came_after(queue, delivered):
    transaction.begin()
    queue.pending().append("kept")
    savepoint = transaction.savepoint()
    queue.pending().append("rolled back")
    savepoint.rollback()
    queue.pending().append("after")
    transaction.commit()
    assert delivered == [["kept", "after"]]


def test_a_failing_delivery_is_logged_not_raised(caplog):
    def deliver(items):
        raise ValueError("broken consumer")
    queue = AfterCommitQueue("broken", deliver)
    transaction.begin()
    queue.pending().append("x")
    with caplog.at_level(logging.ERROR, logger="txzserver"):
        transaction.commit()
    assert "broken: handing over 1 committed item(s) failed" in caplog.text
