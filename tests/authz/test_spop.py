"""SPOP, HAProxy's offload protocol (tarn_authz.spop), and the agent's reading of a question
(tarn_authz.spoa.read_question): pure, no sockets. Encodings are checked against the worked
ranges of HAProxy's doc/SPOE.txt, section 3.1; every malformed input is an SpopError with the
status the agent sends back, never another exception."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from tarn_authz import spop
from tarn_authz.spoa import read_question

# SPOE.txt 3.1: where each varint length starts.
VARINT_LENGTHS = [(0, 1), (239, 1), (240, 2), (2287, 2), (2288, 3), (264431, 3), (264432, 4), (33818863, 4),
                  (33818864, 5), (4328786159, 5), (2 ** 64 - 1, 10)]


@pytest.mark.parametrize("value, length", VARINT_LENGTHS)
def test_varints_take_the_lengths_of_haproxys_peers_encoding_and_round_trip(value, length):
    encoded = spop.encode_varint(value)
    assert len(encoded) == length
    assert spop.decode_varint(encoded + b"rest", 0) == (value, length)


def test_a_two_byte_varint_is_its_documented_bit_layout():
    assert spop.encode_varint(240) == bytes([0xF0, 0x00])
    assert spop.encode_varint(2287) == bytes([0xFF, 0x7F])


@pytest.mark.parametrize("data", [b"", b"\xf0", b"\xf0\x80", b"\xff" + b"\xff" * 11, b"\xff" * 9 + b"\x7f"])
def test_truncated_or_overlong_varints_are_invalid(data):
    with pytest.raises(spop.SpopError) as error:
        spop.decode_varint(data, 0)
    assert error.value.status == spop.INVALID


@pytest.mark.parametrize("value", [None, True, False, 0, 7, 2 ** 32 - 1, 2 ** 32, -1, -(2 ** 63), "", "alice",
                                   "ünï", b"\x00\xff", ipaddress.ip_address("10.1.2.3"),
                                   ipaddress.ip_address("2001:db8::1")])
def test_typed_values_round_trip(value):
    encoded = spop.encode_typed(value)
    assert spop.decode_typed(encoded, 0) == (value, len(encoded))


def test_signed_integers_are_read_as_twos_complement_and_unsigned_ones_are_bounded():
    assert spop.decode_typed(bytes([spop.T_INT32]) + spop.encode_varint(2 ** 32 - 1), 0)[0] == -1
    for kind, too_big in ((spop.T_INT32, 2 ** 32), (spop.T_UINT32, 2 ** 32)):
        with pytest.raises(spop.SpopError):
            spop.decode_typed(bytes([kind]) + spop.encode_varint(too_big), 0)


@pytest.mark.parametrize("data, what", [
    (bytes([10]), "unknown data type"),
    (bytes([15]), "unknown data type"),
    (bytes([spop.T_STRING]) + spop.encode_varint(5) + b"abc", "runs past"),
    (bytes([spop.T_STRING, 2]) + b"\xc3\x28", "not UTF-8"),
    (bytes([spop.T_IPV6]) + b"\x00" * 15, "truncated address"),
    (bytes([spop.T_IPV4]) + b"\x01\x02", "truncated address"),
    (b"", "truncated typed data"),
])
def test_malformed_typed_data_is_invalid_with_the_reason(data, what):
    with pytest.raises(spop.SpopError, match=what) as error:
        spop.decode_typed(data, 0)
    assert error.value.status == spop.INVALID


def _notify(*messages, stream_id=7, frame_id=9, flags=spop.FLAG_FIN) -> bytes:
    payload = b""
    for name, args in messages:
        payload += spop.encode_varint(len(name)) + name.encode() + bytes([len(args)]) + spop.encode_kv_list(args)
    return spop.encode_frame(spop.NOTIFY, payload, stream_id, frame_id, flags)


def test_whole_frames_are_split_off_and_a_partial_one_waits_for_its_bytes():
    one = _notify(("tarn-check", {"user": "alice", "action": "infer", "model": "m"}))
    two = _notify(("tarn-check", {"user": "bob"}), stream_id=300, frame_id=2)
    buffer = bytearray(one + two[:5])
    frames = spop.split_frames(buffer, 16384)
    assert [(f.type, f.stream_id, f.frame_id) for f in frames] == [(spop.NOTIFY, 7, 9)]
    assert bytes(buffer) == two[:5]
    buffer += two[5:]
    (frame,) = spop.split_frames(buffer, 16384)
    assert (frame.stream_id, frame.frame_id, frame.flags) == (300, 2, spop.FLAG_FIN)
    assert spop.decode_messages(frame.payload) == [("tarn-check", {"user": "bob"})]
    assert buffer == bytearray()


def test_a_frame_over_the_maximum_is_refused_before_its_bytes_arrive():
    with pytest.raises(spop.SpopError) as error:
        spop.split_frames(bytearray(spop.LENGTH.pack(16385)), 16384)
    assert error.value.status == spop.TOO_BIG


@pytest.mark.parametrize("body", [b"", b"\x03\x00\x00", b"\x03\x00\x00\x00\x01", b"\x03\x00\x00\x00\x01\x00"])
def test_a_frame_shorter_than_its_metadata_is_invalid(body):
    with pytest.raises(spop.SpopError) as error:
        spop.split_frames(bytearray(spop.LENGTH.pack(len(body)) + body), 16384)
    assert error.value.status == spop.INVALID


@pytest.mark.parametrize("payload", [
    spop.encode_varint(3) + b"abc",  # no argument count
    spop.encode_varint(3) + b"abc" + bytes([2]) + spop.encode_kv_list({"user": "a"}),  # one of two arguments
    spop.encode_varint(30) + b"abc",  # a name past the payload
])
def test_truncated_messages_are_invalid(payload):
    with pytest.raises(spop.SpopError) as error:
        spop.decode_messages(payload)
    assert error.value.status == spop.INVALID


def test_an_ack_sets_transaction_variables_in_the_documented_layout():
    frame = spop.ack(5, 6, spop.encode_set_vars([(spop.SCOPE_TRANSACTION, "allowed", True)]))
    (decoded,) = spop.split_frames(bytearray(frame), 16384)
    assert (decoded.type, decoded.stream_id, decoded.frame_id, decoded.flags) == (spop.ACK, 5, 6, spop.FLAG_FIN)
    # set-var, 3 arguments, scope txn, name "allowed", BOOL with the true flag
    assert decoded.payload == bytes([1, 3, 2, 7]) + b"allowed" + bytes([0x11])


HELLO = {"supported-versions": "2.0", "max-frame-size": 16380, "capabilities": "pipelining,async"}


@pytest.mark.parametrize("changes, status", [
    ({"supported-versions": None}, spop.NO_VERSION),
    ({"supported-versions": "1.0, 3.1"}, spop.BAD_VERSION),
    ({"max-frame-size": None}, spop.NO_FRAME_SIZE),
    ({"max-frame-size": "16380"}, spop.NO_FRAME_SIZE),
    ({"max-frame-size": True}, spop.NO_FRAME_SIZE),
    ({"max-frame-size": 255}, spop.BAD_FRAME_SIZE),
    ({"capabilities": None}, spop.NO_CAPABILITIES),
])
def test_a_hello_the_agent_cannot_agree_to_gets_the_matching_status(changes, status):
    hello = {k: v for k, v in {**HELLO, **changes}.items() if v is not None}
    with pytest.raises(spop.SpopError) as error:
        spop.negotiate(hello, 16384)
    assert error.value.status == status


def test_a_hello_settles_the_smaller_frame_size_and_tells_a_health_check():
    assert spop.negotiate(HELLO, 16384) == (16380, False)
    assert spop.negotiate({**HELLO, "supported-versions": " 2.1 , 1.5", "max-frame-size": 65536,
                           "healthcheck": True}, 16384) == (16384, True)


def test_the_agent_hello_answers_version_frame_size_and_pipelining():
    (frame,) = spop.split_frames(bytearray(spop.agent_hello(16380, "pipelining")), 16384)
    assert frame.type == spop.AGENT_HELLO
    assert spop.decode_kv_list(frame.payload) == {"version": "2.0", "max-frame-size": 16380,
                                                  "capabilities": "pipelining"}


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_arbitrary_bytes_are_frames_or_an_spop_error_never_a_crash(data):
    try:
        for frame in spop.split_frames(bytearray(data), 16384):
            spop.decode_kv_list(frame.payload)
    except spop.SpopError:
        pass
    try:
        spop.decode_messages(data)
    except spop.SpopError:
        pass


QUESTION = {"user": "alice", "action": "infer", "model": "add_sub", "client": ipaddress.ip_address("10.0.0.9")}


def test_a_question_names_user_action_model_and_the_clients_address():
    assert read_question(QUESTION) == (("alice", "infer", "add_sub", None, None, "10.0.0.9"), "")
    assert read_question({**QUESTION, "client": "::1", "service": "triton_prod"})[0] == \
        ("alice", "infer", "add_sub", "triton_prod", None, "::1")
    assert read_question({**QUESTION, "client": "not-an-ip"})[0][-1] is None


@pytest.mark.parametrize("changes, why", [
    ({"user": None}, "`user` missing"),
    ({"user": "  "}, "`user` missing"),
    ({"user": 5}, "`user` missing"),
    ({"user": "u" * 257}, "`user` longer than 256"),
    ({"action": b"infer"}, "`action` missing"),
    ({"model": "m" * 1025}, "`model` longer than 1024"),
])
def test_a_malformed_question_is_refused_with_its_reason(changes, why):
    question, reason = read_question({k: v for k, v in {**QUESTION, **changes}.items() if v is not None})
    assert question is None
    assert why in reason
