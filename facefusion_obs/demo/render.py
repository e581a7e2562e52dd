"""The demo without OBS: the same pipeline and settings as the demo scene, rendered to files.

Each clip frame goes through ``FramePipeline`` exactly as the worker runs it for the filter (BGRA in,
straight-alpha RGBA out), then is composited over the virtual background the way OBS's scene does
(normal blending). Frames are read back from the written mp4, so this also proves the clip decodes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from facefusion_obs.demo.assets import DemoAssets, filter_options
from facefusion_obs.demo.clip import CODEC, FPS, write_png

if TYPE_CHECKING:
    from facefusion_obs.runtime.pool import ModelPool


@dataclass
class RenderResult:
    out: Path
    frames: list[Path]
    rgba: Path
    contact_sheet: Path
    video: Path | None
    process_ms: list[float] = field(default_factory=list)


def composite(rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Straight-alpha RGBA over an opaque RGB background (OBS's normal blend), RGB uint8."""
    a = rgba[..., 3:4].astype(np.float32) * (1.0 / 255.0)
    out = rgba[..., :3].astype(np.float32) * a + background.astype(np.float32) * (1.0 - a)
    return (out + 0.5).astype(np.uint8)


def read_clip(path: Path, limit: int) -> list[np.ndarray]:
    """Up to ``limit`` frames of the clip as RGB uint8."""
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        while len(frames) < limit:
            ok, bgr = capture.read()
            if not ok:
                break
            frames.append(np.ascontiguousarray(bgr[..., ::-1]))
    finally:
        capture.release()
    if not frames:
        raise RuntimeError(f"could not decode any frame of {path}")
    return frames


def contact_sheet(pairs: list[tuple[np.ndarray, np.ndarray]], width: int = 480) -> np.ndarray:
    """Rows of (camera | result), scaled to ``width`` each, for a glance at the whole run."""
    rows = []
    for before, after in pairs:
        h = round(before.shape[0] * width / before.shape[1])
        rows.append(np.concatenate([cv2.resize(before, (width, h), interpolation=cv2.INTER_AREA),
                                    cv2.resize(after, (width, h), interpolation=cv2.INTER_AREA)], axis=1))
    return np.concatenate(rows, axis=0)


def render_headless(assets: DemoAssets, out: Path, pool: ModelPool, frames: int | None = None, *,
                    video: bool = True, sheet_rows: int = 4) -> RenderResult:
    """Run the demo's pipeline over the clip and write PNG frames, a contact sheet and an mp4."""
    from facefusion_obs.pipeline.frame import FramePipeline

    count = min(frames or assets.frames, assets.frames)
    clip = read_clip(assets.clip, count)
    background = cv2.imread(str(assets.background), cv2.IMREAD_COLOR)
    if background is None:
        raise RuntimeError(f"could not read the background image {assets.background}")
    background = np.ascontiguousarray(background[..., ::-1])
    if background.shape[:2] != clip[0].shape[:2]:
        background = cv2.resize(background, (clip[0].shape[1], clip[0].shape[0]), interpolation=cv2.INTER_AREA)

    pipeline = FramePipeline(filter_options(assets.preset), pool)
    frame_dir = out / "frames"
    frame_dir.mkdir(parents=True, exist_ok=True)
    for stale in frame_dir.glob("*.png"):
        stale.unlink()
    result = RenderResult(out, [], out / "filter_rgba_0000.png", out / "contact_sheet.png", None)
    writer = None
    if video:
        result.video = out / "demo.mp4"
        writer = cv2.VideoWriter(str(result.video), cv2.VideoWriter_fourcc(*CODEC), FPS,
                                 (clip[0].shape[1], clip[0].shape[0]))
        if not writer.isOpened():
            writer, result.video = None, None
    picks = set(np.linspace(0, len(clip) - 1, min(sheet_rows, len(clip))).round().astype(int).tolist())
    pairs = []
    try:
        for i, rgb in enumerate(clip):
            bgra = np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 255, np.uint8)])
            start = time.perf_counter()
            rgba = pipeline.process(bgra)
            result.process_ms.append((time.perf_counter() - start) * 1000.0)
            shown = composite(rgba, background)
            if i == 0:
                write_png(result.rgba, rgba)
            result.frames.append(write_png(frame_dir / f"{i:04d}.png", shown))
            if writer is not None:
                writer.write(np.ascontiguousarray(shown[..., ::-1]))
            if i in picks:
                pairs.append((rgb, shown))
    finally:
        if writer is not None:
            writer.release()
    write_png(result.contact_sheet, contact_sheet(pairs))
    return result
