"""``python -m facefusion_obs.worker``: started by the OBS-side supervisor, never by hand.

The first line on stdin is the bootstrap (control address and key, see ``Endpoint``); it is not on
the command line because other users can read command lines.
"""

from __future__ import annotations

import logging
import sys
import threading
from multiprocessing import AuthenticationError

from facefusion_obs.ipc.control import ControlConnection, Endpoint, ProtocolError
from facefusion_obs.models.manifest import ManifestError
from facefusion_obs.runtime.pool import ModelPool
from facefusion_obs.worker.server import Worker

CONNECT_DEADLINE_S = 30.0


def main() -> int:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="[facefusion-obs worker] %(levelname)s %(message)s"
    )
    log = logging.getLogger("facefusion_obs.worker")
    try:
        endpoint = Endpoint.from_json(sys.stdin.readline())
    except ProtocolError as exc:
        log.error("%s", exc)
        return 2
    listener = endpoint.listen()
    # OBS connects within moments of starting us; if it never does (it crashed meanwhile), leave.
    timer = threading.Timer(CONNECT_DEADLINE_S, lambda: _exit(log))
    timer.daemon = True
    timer.start()
    try:
        while True:
            try:
                conn = ControlConnection(listener.accept())
                break
            except (AuthenticationError, OSError, EOFError) as exc:  # wrong key, peer gone mid-handshake
                log.error("control connection refused: %s", exc)
    finally:
        timer.cancel()
        listener.close()
    try:
        pool = ModelPool()
    except ManifestError as exc:  # a broken manifest: say which field, and leave
        log.error("%s", exc)
        return 2
    with pool:  # every channel's models, loaded once; closed when OBS goes
        Worker(conn, pool, doorbell=endpoint.doorbell).run()
    return 0


def _exit(log: logging.Logger) -> None:
    import os

    log.error("nobody connected within %.0f s; exiting", CONNECT_DEADLINE_S)
    os._exit(4)


if __name__ == "__main__":
    sys.exit(main())
