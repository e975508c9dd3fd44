"""The If header parser of the WebDAV fixes (RFC 4918 section 10.4)."""

from txzserver.zope.davpatches import NO_LOCK, _bare_etag, _lock_token, parse_if

TOKEN = "opaquelocktoken:e71d4fae-5dec-22d6-fea5-00a0c91e6be4"


def test_untagged_list_with_a_token():
    assert parse_if(f"(<{TOKEN}>)") == [(None, [(False, "token", TOKEN)])]


def test_not_no_lock_and_etag():
    assert parse_if(f'(Not <{NO_LOCK}> ["abc"])') == [(None, [(True, "token", NO_LOCK),
                                                              (False, "etag", '"abc"')])]


def test_tagged_lists_apply_to_their_resource_until_the_next_tag():
    header = (f"<http://h/a> (<{TOKEN}>) (Not <{NO_LOCK}>) "
              f"<http://h/b> ([W/\"x\"])")
    assert parse_if(header) == [("http://h/a", [(False, "token", TOKEN)]),
                                ("http://h/a", [(True, "token", NO_LOCK)]),
                                ("http://h/b", [(False, "etag", 'W/"x"')])]


def test_empty_lists_and_garbage_are_skipped():
    assert parse_if("() junk (") == []
    assert parse_if("") == []


def test_not_applies_to_the_next_condition_only():
    assert parse_if(f"(Not <{TOKEN}> <{NO_LOCK}>)") == [(None, [(True, "token", TOKEN),
                                                                (False, "token", NO_LOCK)])]


def test_token_and_etag_normalisation():
    assert _lock_token(TOKEN) == "e71d4fae-5dec-22d6-fea5-00a0c91e6be4"
    assert _bare_etag('W/"abc"') == "abc"
    assert _bare_etag(' "abc" ') == "abc"
    assert _bare_etag(None) == ""
