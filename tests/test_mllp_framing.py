"""MLLP framing without sockets: frames split however the bytes arrive."""

import pytest

from integrations.hl7.mllp import END, START, FrameReader, Garbage, frame

MESSAGE = b"MSH|^~\\&|PMS|CLINIC|VETPACS|CLINIC|20261123||ADT^A08|1|P|2.5.1\rPID|1||42\r"


def test_frames_are_found_whatever_the_read_boundaries():
    stream = frame(MESSAGE) + b"\r\n" + frame(MESSAGE.replace(b"|1|", b"|2|"))
    for size in (1, 2, 3, 7, 64, len(stream)):
        reader, frames = FrameReader(max_size=1000), []
        for i in range(0, len(stream), size):
            frames += reader.feed(stream[i : i + size])
        assert [f.data for f in frames] == [MESSAGE, MESSAGE.replace(b"|1|", b"|2|")], size
        assert all(f.oversize == 0 for f in frames)
        assert reader.pending == 0


def test_a_frame_cut_off_is_pending_not_delivered():
    reader = FrameReader(max_size=1000)
    assert reader.feed(frame(MESSAGE)[:-5]) == []
    assert reader.pending == len(MESSAGE) - 3


@pytest.mark.parametrize("junk", [b"GET / HTTP/1.1\r\n", b"MSH|no start byte", b"\x00\x01"])
def test_bytes_outside_a_frame_are_garbage(junk):
    with pytest.raises(Garbage):
        FrameReader(max_size=1000).feed(junk + frame(MESSAGE))


def test_an_oversize_frame_keeps_only_its_head_and_says_how_big_it_was():
    big = MESSAGE + b"OBX|1|TX|||" + b"x" * 100_000 + b"\r"
    reader, frames = FrameReader(max_size=10_000, keep=200), []
    stream = frame(big) + frame(MESSAGE)
    for i in range(0, len(stream), 4096):
        frames += reader.feed(stream[i : i + 4096])
        assert len(reader.buffer) <= 10_000 + 4096
    assert len(frames) == 2
    assert frames[0].data == big[:200] and frames[0].oversize == len(big)
    assert frames[1].data == MESSAGE and frames[1].oversize == 0


def test_framing_bytes():
    assert frame(b"x") == START + b"x" + END == b"\x0bx\x1c\x0d"
