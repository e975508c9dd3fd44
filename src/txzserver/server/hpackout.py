"""HPACK for the header blocks this server sends: the static table only, each field's bytes cached.

hpack's ``Encoder`` adds every field to the dynamic table and searches it per field: for a
small HTTP/2 response (ten fields) that was a sixth of the connection's CPU, more than
parsing the request. A server's response fields change little (Content-Type, Cache-Control,
Server, X-Frame-Options...), so the saving of indexing them is a few hundred bytes per
response, while encoding them stateless lets each field's bytes be computed once per process.
nginx does the same: response fields as literals that are never added to the dynamic table
(RFC 7541 6.2.2), with the static table's names (and whole fields where the static table has
them, such as ``:status 200``).

h2's outbound normalization is replaced here too, done once per distinct field instead of
per response: names lower-cased, values stripped, connection-specific fields dropped (RFC 9113
8.2.2), credentials and cookies sent as never-indexed literals, and CR, LF and NUL in a value
replaced by spaces (8.2.1: a field carrying them is malformed; they come from the app as
they are, the lean requests keep fields raw).

The decoder is told our dynamic table holds nothing (a size update to 0, 6.3) in the first
block, and again after each change of the client's SETTINGS_HEADER_TABLE_SIZE, which
RFC 7541 4.2 asks for.
"""

from h2.utilities import CONNECTION_HEADERS
from hpack.hpack import encode_integer
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.struct import NeverIndexedHeaderTuple
from hpack.table import HeaderTable

#: Fields whose bytes are kept: a bounded map, cleared whole when full (Date adds one a
#: second, Content-Length one per size: the common fields come back at once).
CACHE_LIMIT = 4096
#: Fields that are per client: never cached, and sent as never-indexed literals (6.2.3), so
#: that no proxy re-encoding them adds them to a table shared between clients.
SENSITIVE_NAMES = frozenset({b"set-cookie", b"cookie", b"authorization", b"proxy-authorization"})
#: Connection-specific fields, which neither HTTP/2 (RFC 9113 8.2.2) nor HTTP/3 (RFC 9114 4.2)
#: carries: h2's own set, dropped here as its normalization does (and by h3.py).
CONNECTION_NAMES = CONNECTION_HEADERS
#: A dynamic table size update to 0 (RFC 7541 6.3): "001" and a 5-bit prefix integer.
EMPTY_TABLE_UPDATE = b"\x20"
#: Literal field without indexing, and never indexed (RFC 7541 6.2.2, 6.2.3): 4-bit prefix.
WITHOUT_INDEXING = 0x00
NEVER_INDEXED = 0x10

_UNSAFE_IN_VALUES = bytes.maketrans(b"\r\n\x00", b"   ")
_huffman = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)

_static_fields = {}
_static_names = {}
for _index, (_name, _value) in enumerate(HeaderTable.STATIC_TABLE, start=1):
    _static_fields.setdefault((_name, _value), _index)
    _static_names.setdefault(_name, _index)


def _string(data):
    """An HPACK string literal (5.2): Huffman-coded when that is shorter."""
    coded = _huffman.encode(data)
    if len(coded) < len(data):
        length = encode_integer(len(coded), 7)
        length[0] |= 0x80
        return bytes(length) + coded
    return bytes(encode_integer(len(data), 7)) + data


def clean_value(value):
    """``value`` with CR, LF and NUL replaced by spaces: HTTP/2 (RFC 9113 8.2.1) and HTTP/3
    (RFC 9114 4.2) treat a field carrying them as malformed, and a proxy passing it on to
    HTTP/1.1 would let it add header lines (response splitting)."""
    return value.translate(_UNSAFE_IN_VALUES)


def encode_field(name, value, representation=WITHOUT_INDEXING):
    """One field's bytes: indexed when the static table has it whole, else a literal that is
    not added to the dynamic table, with the static table's name where it has one."""
    if representation == WITHOUT_INDEXING:
        index = _static_fields.get((name, value))
        if index is not None:
            prefix = encode_integer(index, 7)
            prefix[0] |= 0x80
            return bytes(prefix)
    index = _static_names.get(name)
    if index is None:
        return bytes((representation,)) + _string(name) + _string(value)
    prefix = encode_integer(index, 4)
    prefix[0] |= representation
    return bytes(prefix) + _string(value)


class ResponseHeaderEncoder:
    """Stands in for hpack's ``Encoder`` on a server's h2 connection (``conn.encoder``)."""

    _cache = {}

    def __init__(self):
        self._table_size = 4096
        self._announce = True

    @property
    def header_table_size(self):
        return self._table_size

    @header_table_size.setter
    def header_table_size(self, value):
        """h2 sets the client's new SETTINGS_HEADER_TABLE_SIZE: announce our empty table again."""
        self._table_size = value
        self._announce = True

    def encode(self, headers, huffman=True):
        """The header block for ``headers``: (name, value) bytes as h2 passes them with its
        outbound normalization off (``use_for_responses``). ``huffman`` is hpack's parameter:
        each string here is Huffman-coded when that makes it shorter."""
        cache = self._cache
        parts = []
        if self._announce:
            self._announce = False
            parts.append(EMPTY_TABLE_UPDATE)
        for field in headers:
            key = (field[0], field[1])
            never_indexed = isinstance(field, NeverIndexedHeaderTuple)  # the caller's choice
            encoded = None if never_indexed else cache.get(key)
            if encoded is None:
                name, value = key[0].strip().lower(), clean_value(key[1]).strip()
                if name in CONNECTION_NAMES:
                    encoded = b""
                elif never_indexed or name in SENSITIVE_NAMES:  # never cached
                    parts.append(encode_field(name, value, NEVER_INDEXED))
                    continue
                else:
                    encoded = encode_field(name, value)
                if len(cache) >= CACHE_LIMIT:
                    cache.clear()
                cache[key] = encoded
            parts.append(encoded)
        return b"".join(parts)


def use_for_responses(connection):
    """Make ``connection`` (an ``h2.connection.H2Connection``) encode what it sends here,
    with h2's own normalization and validation of outbound fields off (done above, once per
    distinct field)."""
    connection.encoder = ResponseHeaderEncoder()
    connection.config.normalize_outbound_headers = False
    connection.config.validate_outbound_headers = False
