"""``python -m facefusion_obs.worker``: started by the OBS-side supervisor, never by hand.

The first line on stdin is the bootstrap (control address and key, see ``Endpoint``); it is not on
the command line because other users can read command lines.

The worker never outlives OBS. From the moment the bootstrap is read, a watcher thread notices the
owner's death in every state (importing, waiting for the connection, in the handshake, loading
models, serving): on POSIX the parent pid changes when the parent dies (the orphan is re-parented),
which holds even while the dead parent is an unreaped zombie, and the pid the bootstrap names must
stay alive (for a parent that died before we looked); on Windows, where a parent's death changes
nothing in its child, it waits on a handle to OBS's process. Heavy modules are imported only once
the watcher runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from multiprocessing import AuthenticationError

from facefusion_obs.ipc.control import Endpoint, ProtocolError, sweep_private_dirs
from facefusion_obs.ipc.shm import alive

CONNECT_DEADLINE_S = 30.0
PARENT_POLL_S = 0.1
EXIT_GRACE_S = 0.5  # a serving worker usually sees the control channel close first and exits cleanly


def main() -> int:
    parent = os.getppid()  # before anything else: a parent that dies later changes this
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="[facefusion-obs worker] %(levelname)s %(message)s"
    )
    log = logging.getLogger("facefusion_obs.worker")
    try:
        endpoint = Endpoint.from_json(sys.stdin.readline())  # EOF (the owner died first) is refused too
    except ProtocolError as exc:
        log.error("%s", exc)
        return 2
    _watch_owner(parent, endpoint, log)
    for path in sweep_private_dirs():
        log.info("removed %s, left by a session that crashed", path)
    listener = endpoint.listen()
    # OBS connects within moments of starting us; if it never does (it crashed meanwhile), leave.
    timer = threading.Timer(CONNECT_DEADLINE_S, _leave,
                            (log, f"nobody connected within {CONNECT_DEADLINE_S:.0f} s", endpoint))
    timer.daemon = True
    timer.start()
    try:
        while True:
            try:
                conn = listener.accept()
                break
            except (AuthenticationError, OSError, EOFError) as exc:  # wrong key, silent or gone mid-handshake
                log.error("control connection refused: %s", exc)
    finally:
        timer.cancel()
        listener.close()

    from facefusion_obs.models.manifest import ManifestError
    from facefusion_obs.runtime.pool import ModelPool
    from facefusion_obs.worker.server import Worker

    try:
        pool = ModelPool()
    except ManifestError as exc:  # a broken manifest: say which field, and leave
        log.error("%s", exc)
        return 2
    with pool:  # every channel's models, loaded once; closed when OBS goes
        Worker(conn, pool, doorbell=endpoint.doorbell).run()
    return 0


def _watch_owner(parent: int, endpoint: Endpoint, log: logging.Logger) -> None:
    """Start the thread that ends this process when OBS is gone (see the module docstring)."""
    owner = endpoint.parent

    def gone(why: str) -> None:
        threading.main_thread().join(EXIT_GRACE_S)  # let a clean exit finish if one is under way
        _leave(log, f"{why}; exiting", endpoint)

    if sys.platform == "win32":
        if owner is None:
            return
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenProcess(0x00100000, False, owner)  # SYNCHRONIZE
        if not handle:
            _leave(log, f"OBS (pid {owner}) is already gone; exiting", endpoint)

        def wait() -> None:
            kernel32.WaitForSingleObject(handle, 0xFFFFFFFF)
            gone(f"OBS (pid {owner}) is gone")
    else:
        def wait() -> None:
            while os.getppid() == parent and (owner is None or alive(owner)):
                time.sleep(PARENT_POLL_S)
            gone(f"OBS (pid {owner or parent}) is gone")

    threading.Thread(target=wait, name="ffobs-owner", daemon=True).start()


def _leave(log: logging.Logger, why: str, endpoint: Endpoint) -> None:
    """Exit now, from any thread. The socket goes too: with OBS gone, nobody else removes it."""
    log.error("%s", why)
    if sys.platform != "win32":
        for remove, path in ((os.unlink, endpoint.address), (os.rmdir, os.path.dirname(endpoint.address))):
            with contextlib.suppress(OSError):  # already removed, or OBS still has files there
                remove(path)
    os._exit(4)


if __name__ == "__main__":
    sys.exit(main())
