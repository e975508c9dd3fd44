"""The response header encoder: what a real HPACK decoder (hpack's, as h2 clients use) reads
back, and what it keeps out of the decoder's dynamic table."""

import hpack
import pytest
from hpack.struct import HeaderTuple, NeverIndexedHeaderTuple

from txzserver.server import hpackout
from txzserver.server.hpackout import ResponseHeaderEncoder, encode_field

RESPONSE = [
    HeaderTuple(b":status", b"200"),
    HeaderTuple(b"content-type", b"text/plain;charset=utf-8"),
    HeaderTuple(b"content-length", b"2"),
    HeaderTuple(b"x-frame-options", b"SAMEORIGIN"),
    HeaderTuple(b"x-powered-by", b"Zope (www.zope.dev), Python (www.python.org)"),
    HeaderTuple(b"date", b"Mon, 07 Dec 2026 01:00:00 GMT"),
]


def decode(decoder, block):
    return [(name, value) for name, value in decoder.decode(block, raw=True)]


def test_blocks_decode_to_the_fields_and_leave_the_decoders_table_empty():
    encoder, decoder = ResponseHeaderEncoder(), hpack.Decoder()
    for _ in range(3):  # the later blocks come from the cache
        assert decode(decoder, encoder.encode(RESPONSE)) == [tuple(f) for f in RESPONSE]
        assert len(decoder.header_table.dynamic_entries) == 0


def test_the_first_block_announces_an_empty_table_and_so_does_the_one_after_a_settings_change():
    encoder = ResponseHeaderEncoder()
    assert encoder.encode(RESPONSE[:1]) == b"\x20\x88"  # size update to 0, then :status 200
    assert encoder.encode(RESPONSE[:1]) == b"\x88"
    encoder.header_table_size = 0  # h2 does this when the client's HEADER_TABLE_SIZE changes
    assert encoder.header_table_size == 0
    assert encoder.encode(RESPONSE[:1]) == b"\x20\x88"


def test_a_decoder_whose_table_was_shrunk_accepts_the_next_block():
    encoder, decoder = ResponseHeaderEncoder(), hpack.Decoder()
    decode(decoder, encoder.encode(RESPONSE))
    decoder.max_allowed_table_size = 0  # as after our SETTINGS_HEADER_TABLE_SIZE 0 was acked
    encoder.header_table_size = 0
    assert decode(decoder, encoder.encode(RESPONSE)) == [tuple(f) for f in RESPONSE]


def test_static_table_fields_are_one_byte_and_others_use_the_static_name():
    assert encode_field(b":status", b"404") == b"\x8d"  # static entry 13, indexed
    field = encode_field(b"content-length", b"2")  # name index 28, literal without indexing
    assert field[0] == 0x0F and field[1] == 28 - 15
    assert field[2:] == b"\x01" + b"2"  # shorter without Huffman coding


def test_sensitive_fields_stay_never_indexed_and_out_of_the_cache():
    encoder, decoder = ResponseHeaderEncoder(), hpack.Decoder()
    hpackout.ResponseHeaderEncoder._cache.clear()
    fields = [NeverIndexedHeaderTuple(b"authorization", b"Bearer secret"),
              HeaderTuple(b"set-cookie", b"__ac=secret; Path=/")]
    block = encoder.encode(fields)
    decoded = decoder.decode(block, raw=True)
    assert isinstance(decoded[0], NeverIndexedHeaderTuple)
    assert [tuple(f) for f in decoded] == [tuple(f) for f in fields]
    assert not any(b"secret" in value for _, value in ResponseHeaderEncoder._cache)


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(hpackout, "CACHE_LIMIT", 8)
    encoder = ResponseHeaderEncoder()
    for size in range(100):
        encoder.encode([HeaderTuple(b"content-length", str(size).encode())])
        assert len(ResponseHeaderEncoder._cache) <= 8


@pytest.mark.parametrize("name", [b"x-long", b"content-type"])
def test_long_values_use_multi_byte_lengths(name):
    value = b"a" * 300
    decoded = hpack.Decoder().decode(ResponseHeaderEncoder().encode([HeaderTuple(name, value)]), raw=True)
    assert decoded == [(name, value)]


def test_fields_are_normalized_as_h2_would_with_its_normalization_off():
    encoder = ResponseHeaderEncoder()
    block = encoder.encode([(b":status", b"200"), (b"Content-Type", b" text/html "),
                            (b"Connection", b"keep-alive"), (b"Transfer-Encoding", b"chunked"),
                            (b"Set-Cookie", b"__ac=secret")])
    decoded = hpack.Decoder().decode(block, raw=True)
    assert [tuple(f) for f in decoded] == [(b":status", b"200"), (b"content-type", b"text/html"),
                                           (b"set-cookie", b"__ac=secret")]
    assert isinstance(decoded[2], NeverIndexedHeaderTuple)


def test_h2_connections_use_it_with_their_own_normalization_off():
    import h2.config
    import h2.connection

    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    hpackout.use_for_responses(connection)
    assert isinstance(connection.encoder, ResponseHeaderEncoder)
    assert not connection.config.normalize_outbound_headers
    assert not connection.config.validate_outbound_headers


def test_a_field_the_caller_marks_never_indexed_stays_so_after_the_same_field_was_cached():
    encoder, decoder = ResponseHeaderEncoder(), hpack.Decoder()
    encoder.encode([HeaderTuple(b"x-token", b"abc")])  # cached as a plain literal
    decoded = decoder.decode(encoder.encode([NeverIndexedHeaderTuple(b"x-token", b"abc")]), raw=True)
    assert isinstance(decoded[0], NeverIndexedHeaderTuple) and tuple(decoded[0]) == (b"x-token", b"abc")
