"""SpooledStdout: RESPONSE.write() output stays bytes when small, becomes a stream when large."""

from txzserver.server.streaming import StreamBody
from txzserver.zope.publish import SpooledStdout, spooling_response


def test_small_output_is_bytes():
    out = SpooledStdout(max_size=1024)
    out.write(b"hello ")
    out.write(b"world")
    assert out.getvalue() == b"hello world"


def test_large_output_spills_to_a_file_handed_over_as_a_stream():
    out = SpooledStdout(max_size=1024)
    data = bytes(range(256)) * 40  # 10 KiB
    for offset in range(0, len(data), 700):
        out.write(data[offset:offset + 700])
    value = out.getvalue()
    assert isinstance(value, StreamBody)
    assert b"".join(value) == data  # read from the start
    value.close()
    assert out.closed


def test_response_factory_writes_to_a_spooled_stdout():
    response = spooling_response(stdout=object(), stderr=None)
    assert isinstance(response.stdout, SpooledStdout)
