"""A shared public frame's bytes are exactly what wsproto (simple-websocket's protocol) would
send for the same text message, at every length encoding."""

import pytest
from wsproto.frame_protocol import FrameProtocol

from app.backpack.public_streams import framed


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
def test_a_frame_is_the_one_wsproto_sends(size):
    text = ("é" + "x" * size)[:size] if size else ""
    assert framed(text) == FrameProtocol(client=False, extensions=[]).send_data(text, fin=True)
