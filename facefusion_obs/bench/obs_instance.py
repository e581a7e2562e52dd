"""Real OBS Studio for end-to-end tests and the OBS-side benchmark.

Xvfb, a throw-away OBS config, and an obs-websocket client.

Nothing here is mocked: it starts Debian's ``obs`` under ``Xvfb`` with a fresh HOME, a scene
collection that loads ``facefusion_obs.py`` the way a user does (Tools → Scripts), and talks to the
bundled obs-websocket 5.1 for screenshots and filter changes.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import websocket
from PIL import Image

from facefusion_obs.config import FILTER_ID, PROJECT_ROOT

SCENE = "Scene"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ObsWebsocket:
    """A minimal obs-websocket 5.x client (no auth: the test instance disables it)."""

    def __init__(self, port: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}", timeout=10)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        hello = json.loads(self.ws.recv())
        assert hello["op"] == 0, hello
        self.ws.send(json.dumps({"op": 1, "d": {"rpcVersion": 1, "eventSubscriptions": 0}}))
        assert json.loads(self.ws.recv())["op"] == 2
        self._ids = itertools.count(1)

    def call(self, request: str, **data: Any) -> dict[str, Any]:
        rid = str(next(self._ids))
        self.ws.send(
            json.dumps({"op": 6, "d": {"requestType": request, "requestId": rid, "requestData": data}})
        )
        while True:
            msg = json.loads(self.ws.recv())
            if msg["op"] == 7 and msg["d"]["requestId"] == rid:
                status = msg["d"]["requestStatus"]
                if not status["result"]:
                    raise RuntimeError(f"{request} failed: {status}")
                return msg["d"].get("responseData", {})

    def screenshot(self, source: str, width: int, height: int) -> np.ndarray:
        """The source as OBS renders it (filters applied), RGBA with straight alpha."""
        data = self.call(
            "GetSourceScreenshot", sourceName=source, imageFormat="png", imageWidth=width, imageHeight=height
        )["imageData"]
        png = base64.b64decode(data.split(",", 1)[1])
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))

    def close(self) -> None:
        self.ws.close()


class ObsInstance:
    """One OBS process under its own Xvfb, home and websocket port."""

    def __init__(
        self,
        root: Path,
        sources: list[dict[str, Any]] | None,
        python: str | None,
        size: tuple[int, int],
        env: dict[str, str] | None = None,
        *,
        collection: str = "test",
        scene: str = SCENE,
    ) -> None:
        """``sources`` go into a one-scene collection named "test"; with ``sources=None`` the caller
        writes its own collection under ``self.obs_config / "basic/scenes"`` before ``start()`` and
        names it (and its scene) with ``collection`` and ``scene``."""
        self.root = root
        self.home = root / "home"
        self.obs_config = self.home / ".config" / "obs-studio"
        self.collection, self.scene = collection, scene
        self.port = free_port()
        self.log_path = root / "obs.log"
        self.size = size
        self._write_config(sources, size)
        self.env = dict(os.environ)
        for var in ("FACEFUSION_OBS_PYTHON", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
            self.env.pop(var, None)
        self.env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_DATA_HOME=str(self.home / ".local/share"),
            # the checkout's worker.json records the installing user's presets folder: stay in this home
            FACEFUSION_OBS_PRESETS=str(self.home / ".local/share/facefusion-obs/presets"),
            LIBGL_ALWAYS_SOFTWARE="1",
            FACEFUSION_OBS_STATS_EVERY="1",
        )
        if python is not None:  # else the script finds the worker as a user's OBS does (worker_setup)
            self.env["FACEFUSION_OBS_PYTHON"] = python
        self.env.update(env or {})
        self.xvfb: subprocess.Popen[bytes] | None = None
        self.obs: subprocess.Popen[bytes] | None = None
        self.ws: ObsWebsocket | None = None

    def _write_config(self, sources: list[dict[str, Any]] | None, size: tuple[int, int]) -> None:
        base = self.home / ".config" / "obs-studio"
        (base / "basic" / "profiles" / "test").mkdir(parents=True)
        (base / "basic" / "scenes").mkdir(parents=True)
        (base / "global.ini").write_text(
            "[General]\nFirstRun=true\n\n[Basic]\nProfile=test\nProfileDir=test\nSceneCollection=test\n"
            "SceneCollectionFile=test\n\n[OBSWebSocket]\nFirstLoad=false\nServerEnabled=true\n"
            f"ServerPort={self.port}\nAuthRequired=false\nAlertsEnabled=false\n"
        )
        w, h = size
        (base / "basic" / "profiles" / "test" / "basic.ini").write_text(
            f"[General]\nName=test\n\n[Video]\nBaseCX={w}\nBaseCY={h}\nOutputCX={w}\nOutputCY={h}\n"
            "FPSType=0\nFPSCommon=30\n"
        )
        if sources is None:
            return
        items = [
            {
                "name": s["name"],
                "id": i + 1,
                "visible": True,
                "locked": False,
                "rot": 0.0,
                "pos": {"x": 0.0, "y": 0.0},
                "scale": {"x": 1.0, "y": 1.0},
                "align": 5,
                "bounds_type": 0,
                "bounds": {"x": 0.0, "y": 0.0},
            }
            for i, s in enumerate(sources)
        ]
        scene = {
            "id": "scene",
            "versioned_id": "scene",
            "name": SCENE,
            "uuid": "00000000-0000-4000-8000-0000000000aa",
            "settings": {"items": items, "id_counter": len(items), "custom_size": False},
        }
        collection = {
            "name": "test",
            "current_scene": SCENE,
            "current_program_scene": SCENE,
            "scene_order": [{"name": SCENE}],
            "sources": [scene, *sources],
            "modules": {"scripts-tool": [{"path": str(PROJECT_ROOT / "facefusion_obs.py"), "settings": {}}]},
        }
        (base / "basic" / "scenes" / "test.json").write_text(json.dumps(collection, indent=1))

    def start(self) -> ObsInstance:
        read, write = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
            pass_fds=(write,),
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        display = os.read(read, 16).decode().strip()
        self._display_fd = read  # closing it early can take Xvfb down with SIGPIPE
        self.env["DISPLAY"] = f":{display}"
        log = self.log_path.open("wb")
        self.obs = subprocess.Popen(
            [
                "obs",
                "--multi",
                "--minimize-to-tray",
                "--disable-updater",
                "--disable-missing-files-check",
                "--collection",
                self.collection,
                "--profile",
                "test",
                "--scene",
                self.scene,
                "--websocket_port",
                str(self.port),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(self.root),
        )
        self.ws = ObsWebsocket(self.port)
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 30.0, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()[after:]
            if needle in text:
                return text
            if self.obs is not None and self.obs.poll() is not None:
                raise RuntimeError(
                    f"OBS exited ({self.obs.returncode}) waiting for {needle!r}:\n{text[-3000:]}"
                )
            time.sleep(0.1)
        raise TimeoutError(f"{needle!r} not in OBS log after {timeout} s:\n{self.log_text()[-3000:]}")

    def worker_pids(self) -> list[int]:
        """Live worker processes started by this OBS (children running facefusion_obs.worker)."""
        assert self.obs is not None
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == self.obs.pid and stat[0] != "Z" and b"facefusion_obs.worker" in cmd:
                pids.append(int(entry))
        return pids

    def stop(self) -> int | None:
        code = None
        if self.ws is not None:
            self.ws.close()
        if self.obs is not None and self.obs.poll() is None:
            self.obs.send_signal(signal.SIGINT)  # clean shutdown: script_unload runs
            try:
                code = self.obs.wait(15)
            except subprocess.TimeoutExpired:
                self.obs.kill()
                code = self.obs.wait()
        if self.xvfb is not None:
            self.xvfb.terminate()
            self.xvfb.wait(5)
            os.close(self._display_fd)
        return code


def image_source(name: str, path: Path, filters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "image_source",
        "versioned_id": "image_source",
        "name": name,
        "settings": {"file": str(path), "unload": False},
        "filters": filters,
    }


def facefusion_filter(name: str = "FaceFusion", **settings: Any) -> dict[str, Any]:
    return {"id": FILTER_ID, "versioned_id": FILTER_ID, "name": name, "settings": settings}


def obs_available() -> bool:
    return shutil.which("obs") is not None and shutil.which("Xvfb") is not None
