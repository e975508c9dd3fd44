"""txzserver.server.admission.PublishQueue: a connection's share of the publisher pool."""

from twisted.internet import defer

from txzserver.server.admission import PublishQueue


class Starts:
    """Records started requests; each start returns a Deferred the test fires."""

    def __init__(self):
        self.started = []
        self.deferreds = []

    def make(self, name):
        def start():
            self.started.append(name)
            d = defer.Deferred()
            self.deferreds.append(d)
            return d
        return start


def test_at_most_limit_in_the_pool_the_rest_in_order():
    starts, queue = Starts(), PublishQueue(2)
    for name in "abcde":
        queue.submit(starts.make(name), lambda: False)
    assert starts.started == ["a", "b"]
    assert len(queue.waiting) == 3
    starts.deferreds[0].callback(None)
    assert starts.started == ["a", "b", "c"]
    starts.deferreds[1].errback(RuntimeError("a failed publish also frees the slot"))
    starts.deferreds[1].addErrback(lambda f: None)
    assert starts.started == ["a", "b", "c", "d"]


def test_requests_whose_client_left_are_dropped_before_their_turn():
    starts, queue = Starts(), PublishQueue(1)
    gone = set()
    for name in "abcd":
        queue.submit(starts.make(name), lambda name=name: name in gone)
    gone.update("bc")  # reset while waiting
    starts.deferreds[0].callback(None)
    assert starts.started == ["a", "d"]
    assert queue.dropped == 2
    assert queue.active == 1


def test_limit_is_at_least_one():
    assert PublishQueue(0).limit == 1
