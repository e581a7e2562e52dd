"""Person segmentation with MediaPipe's selfie model (LiteRT, from the MediaPipe 0.10.21 wheel).

One class per model, in the model-zoo style: the model pool builds it from the verified file and its
LiteRT session (``pool.load(SelfieSegmenter)``, one copy shared by every pipeline), ``prepare()`` reads
the input size and ``get()`` returns the person probability on the model's own 256x256 grid. The
matting brings that grid to full resolution itself, which keeps the model call independent of the frame size.
"""

from __future__ import annotations

from typing import Any

import numpy

from facefusion_obs.runtime.xp import to_numpy

MODEL_NAME = "selfie_segmentation"


def _resize_host(image: numpy.ndarray, height: int, width: int) -> numpy.ndarray:
    """Area-resize on the host: the model runs on the CPU, so the frame is fetched once, small."""
    try:
        import cv2
    except ImportError:  # the pure-xp path gives the same geometry, only slower
        from facefusion_obs.runtime.imageops import resize_linear_xp

        return resize_linear_xp(image.astype(numpy.float32), height, width)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA).astype(numpy.float32)


class SelfieSegmenter:
    """MediaPipe selfie segmentation (general model, 256x256 RGB in 0..1, sigmoid probability out)."""

    model_name = MODEL_NAME

    def __init__(self, file: Any, session: Any) -> None:
        self.path = file.path
        self.model: Any = session
        self.size = (256, 256)

    def prepare(self) -> SelfieSegmenter:
        shape = self.model.input_shapes[0]
        self.size = (int(shape[1]), int(shape[2]))
        return self

    def get(self, rgb: Any) -> numpy.ndarray:
        """Person probability (256, 256 float32 in 0..1, host array) for an RGB frame (H, W, 3 uint8)."""
        height, width = self.size
        # strided sampling before the area resize keeps the host copy small for a GPU frame
        step = max(1, min(rgb.shape[0] // (2 * height), rgb.shape[1] // (2 * width)))
        small = to_numpy(rgb[::step, ::step])
        tensor = _resize_host(numpy.ascontiguousarray(small), height, width) * (1.0 / 255.0)
        (prob,) = self.model.run(tensor[None])
        return numpy.clip(prob.reshape(height, width), 0.0, 1.0).astype(numpy.float32)


REUSE_PSNR_DB = 35.0  # obs-backgroundremoval's threshold: above it the picture "did not change"
REUSE_MAX_FRAMES = 4  # and never more than this many frames in a row, so slow drift is followed
_THUMB_ROWS = 36


class ReusedSegmentation:
    """A stream's segmentation, re-run only when the picture changed.

    The person prior is coarse (a 256x256 grid) and a streamer is often nearly still, so a frame
    whose thumbnail is within ``REUSE_PSNR_DB`` of the one last segmented reuses its probability.
    Per stream (it remembers the last frame), while the model itself is shared through the pool.
    """

    def __init__(self, model: SelfieSegmenter) -> None:
        self.model = model
        self.every = 1  # under load the pipeline asks for at most one run every ``every`` frames
        self.reset()

    def reset(self) -> None:
        self._thumb: numpy.ndarray | None = None
        self._prob: numpy.ndarray | None = None
        self._age = 0
        self.reused = 0  # frames served from the last result, for the benchmark's breakdown

    def get(self, rgb: Any) -> numpy.ndarray:
        """Person probability (256, 256) for ``rgb``, as ``SelfieSegmenter.get``."""
        from facefusion_obs.runtime.imageops import block_mean

        thumb = to_numpy(block_mean(rgb, max(1, rgb.shape[0] // _THUMB_ROWS)))
        last = self._thumb
        if last is not None and last.shape == thumb.shape and self._age < self.every - 1:
            self._age += 1
            self.reused += 1
            return self._prob
        if last is not None and last.shape == thumb.shape and self._age < REUSE_MAX_FRAMES:
            mse = float(numpy.mean((thumb - last) ** 2))
            if mse <= 255.0 ** 2 / 10.0 ** (REUSE_PSNR_DB / 10.0):
                self._age += 1
                self.reused += 1
                return self._prob
        self._thumb, self._prob, self._age = thumb, self.model.get(rgb), 0
        return self._prob
