"""The policy delegation protocol's framing, without a server."""

from __future__ import annotations

from enforcement.protocol import MAX_LINE, MAX_REQUEST, RequestReader


def test_a_request_split_anywhere_parses_the_same():
    data = (
        b"request=smtpd_access_policy\nprotocol_state=RCPT\r\nsender=a@b.example\nrecipient=c@d.example\n\n"
    )
    for cut in range(1, len(data)):
        reader = RequestReader()
        requests = reader.feed(data[:cut]) + reader.feed(data[cut:])
        assert len(requests) == 1
        assert requests[0].attributes == {
            "request": "smtpd_access_policy",
            "protocol_state": "RCPT",
            "sender": "a@b.example",
            "recipient": "c@d.example",
        }
        assert not reader.pending


def test_several_requests_in_one_read_come_out_in_order():
    reader = RequestReader()
    requests = reader.feed(b"instance=1\n\ninstance=2\n\ninstance=3\n")
    assert [r.get("instance") for r in requests] == ["1", "2"]
    assert reader.pending
    assert reader.feed(b"\n")[0].get("instance") == "3"


def test_values_may_contain_equals_signs_and_unknown_attributes_are_kept():
    (request,) = RequestReader().feed(b"ccert_subject=CN=x=y\nsomething_new=1\n\n")
    assert request.get("ccert_subject") == "CN=x=y"
    assert request.get("something_new") == "1"
    assert not request.error


def test_a_line_without_equals_marks_only_its_request_malformed():
    reader = RequestReader()
    bad, good = reader.feed(b"sender=a@b.example\ngarbage\n\nsender=c@d.example\n\n")
    assert bad.error and not bad.attributes
    assert good.get("sender") == "c@d.example" and not good.error


def test_an_overlong_line_is_dropped_in_bounded_memory():
    reader = RequestReader()
    assert reader.feed(b"sender=" + b"x" * (MAX_LINE * 4)) == []
    assert len(reader._buffer) <= MAX_LINE  # what it keeps of the line stays bounded
    bad, good = reader.feed(b"x" * 100 + b"\nrecipient=r@x.example\n\nsender=ok@x.example\n\n")
    assert "longer than" in bad.error
    assert good.get("sender") == "ok@x.example"


def test_an_oversized_request_is_malformed():
    reader = RequestReader()
    lines = b"".join(b"attr%d=%s\n" % (i, b"v" * 1000) for i in range(MAX_REQUEST // 1000 + 2))
    (request,) = reader.feed(lines + b"\n")
    assert "larger than" in request.error


def test_non_utf8_values_do_not_break_parsing():
    (request,) = RequestReader().feed(b"sender=\xff\xfe@x.example\n\n")
    assert request.get("sender").endswith("@x.example")


def test_requests_parse_the_same_whole_or_byte_by_byte():
    # A whole request in one read takes the fast path; byte by byte takes the line parser. Both must agree,
    # edge cases included.
    streams = [
        b"request=smtpd_access_policy\nprotocol_state=RCPT\nsender=a@b.example\n\n",
        b"Sender=A@B.example\n Client_Name =x\n\n",
        b"a=1\r\nb=2\r\n\r\nc=3\n\n",
        b"\n\nsender=a@b.example\n\n",
        b"ok=1\nno equals here\n\nafter=2\n\n",
        b"=value\n\n",
        b"n\xc3\xa4me=1\n\nsender=\xff@x.example\n\n",
        b"x=" + b"y" * (MAX_LINE + 10) + b"\n\nafter=1\n\n",
        b"".join(b"a%d=1\n" % i for i in range(300)) + b"\n",
        b"ccert_subject=CN=x=y\nsender=a@b.example\nsender=c@d.example\n\n",
    ]
    for stream in streams:
        whole = RequestReader()
        split = RequestReader()
        at_once = whole.feed(stream)
        one_by_one = [request for i in range(len(stream)) for request in split.feed(stream[i : i + 1])]
        assert [(r.attributes, r.error) for r in at_once] == [(r.attributes, r.error) for r in one_by_one]
        assert whole.pending == split.pending
