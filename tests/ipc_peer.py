"""A second process for the IPC tests: ``python ipc_peer.py write NAME W H FRAMES``.

It attaches to a channel created by the test and publishes FRAMES input frames as fast as it can,
each filled entirely with ``frame_id % 251`` so a reader can detect any torn frame.
"""

import ctypes
import sys
import time

from facefusion_obs.ipc.frames import FrameChannel


def write(name: str, width: int, height: int, frames: int) -> None:
    channel = FrameChannel.attach(name, width, height)
    size = channel.frame_bytes
    for frame_id in range(1, frames + 1):
        channel.input.write(lambda slot, v=frame_id % 251: ctypes.memset(channel.input.slot_address(slot), v, size),
                            frame_id=frame_id, capture_ns=time.monotonic_ns())
    channel.close()


if __name__ == "__main__":
    command, name, w, h, n = sys.argv[1:6]
    assert command == "write"
    write(name, int(w), int(h), int(n))
