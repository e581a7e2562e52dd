"""Moving-face sequences with their true pose known by construction, for ``bench faces`` and the tests.

A real face photo (skimage's astronaut, or a person from insightface's t1.jpg) is warped by a known
similarity per frame (position, roll, scale) over a generated background at 1280x720, with an
exposure's motion blur (the mean of three warps across half a frame interval) and sensor noise. The
photo's landmarks are measured once on the still photo (detector, then the landmark model on its own
framing until it settles); each frame's truth is those landmarks moved by the frame's similarity.

Sequences (every seed draws another path, speed, roll and scale phase, background and noise):
- ``fast``: a sway at 34-42 px a frame on average (the path's sine slows only to turn round), roll
  within ±15°, scale within ±15%;
- ``occluder``: a slower face with a hand-sized block (grey or skin-toned, drawn from the seed)
  passing over it; frames where it covers the face are marked;
- ``two-faces``: two people, each on its own path;
- ``still``: a face that does not move (the jitter measurement), only noise changes.

Nothing in the worker imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

WIDTH, HEIGHT = 1280, 720
SEQUENCES = ("fast", "occluder", "two-faces", "still")


@dataclass(frozen=True)
class FacePhoto:
    """A photo with one face and that face's 468 landmarks (photo pixels) measured on it."""

    name: str
    rgb: np.ndarray
    landmarks: np.ndarray  # (468, 3)

    @property
    def size(self) -> float:
        xy = self.landmarks[:, :2]
        return float(max(xy.max(0) - xy.min(0)))


@dataclass
class Sequence:
    """Frames (RGB uint8) and, per frame, each face's true landmarks (468, 2) and how much of it an
    occluder covers (0..1)."""

    name: str
    seed: int
    frames: list[np.ndarray] = field(default_factory=list)
    truth: list[list[np.ndarray]] = field(default_factory=list)
    covered: list[list[float]] = field(default_factory=list)
    fps: float = 30.0
    speed: float = 0.0  # mean speed of the faces, px per frame


def measure_photo(pool: Any, name: str, rgb: np.ndarray) -> FacePhoto:
    """The photo's face landmarks: the largest detection, then the model on its own framing 4 times."""
    from facefusion_obs.faces import (
        FULL_RANGE,
        SHORT_RANGE,
        FaceDetector,
        FaceLandmarker,
        roi_from_detection,
        roi_from_landmarks,
    )

    found = pool.load(FaceDetector, SHORT_RANGE.model).get(rgb) or pool.load(FaceDetector, FULL_RANGE.model).get(rgb)
    if not found:
        raise RuntimeError(f"no face found in {name}")
    det = max(found, key=lambda d: float(np.prod(d.box[2:] - d.box[:2])))
    marker = pool.load(FaceLandmarker)
    pts, _ = marker.get(rgb, roi_from_detection(det))
    for _ in range(4):
        pts, presence = marker.get(rgb, roi_from_landmarks(pts))
    if presence < 0.9:
        raise RuntimeError(f"{name}: landmark presence {presence:.2f}")
    return FacePhoto(name, rgb, pts)


def face_photos(pool: Any) -> list[FacePhoto]:
    """The astronaut, and the man in the middle of t1.jpg cropped and enlarged to a webcam's framing."""
    from facefusion_obs.demo.photos import astronaut, sample_image

    t1 = cv2.imread(str(sample_image("t1.jpg")))[..., ::-1]
    # the man in the middle (his face is at x 458-581, y 285-408 of the 1280x886 photo), alone
    crop = np.ascontiguousarray(cv2.resize(t1[215:475, 410:650], None, fx=1.8, fy=1.8, interpolation=cv2.INTER_CUBIC))
    return [measure_photo(pool, "astronaut", astronaut()), measure_photo(pool, "t1-man", crop)]


def background(rng: np.random.Generator) -> np.ndarray:
    """A room-like backdrop: a smooth two-colour gradient with soft blocks of furniture and shelves."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    a, b = rng.uniform(40, 200, 3), rng.uniform(40, 200, 3)
    angle = rng.uniform(0, np.pi)
    ramp = ((xx * np.cos(angle) + yy * np.sin(angle)) / (WIDTH + HEIGHT))[..., None]
    img = a * (1 - ramp) + b * ramp
    for _ in range(int(rng.integers(6, 14))):
        x0, y0 = int(rng.integers(0, WIDTH - 60)), int(rng.integers(0, HEIGHT - 60))
        w, h = int(rng.integers(40, 400)), int(rng.integers(40, 300))
        img[y0 : y0 + h, x0 : x0 + w] = img[y0 : y0 + h, x0 : x0 + w] * 0.4 + rng.uniform(20, 235, 3) * 0.6
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 2.0)
    return np.clip(img, 0, 255).astype(np.uint8)


def similarity(photo: FacePhoto, centre: np.ndarray, roll_deg: float, scale: float, face_px: float) -> np.ndarray:
    """2x3 map of photo pixels to frame pixels: the face centre to ``centre``, rolled, ``face_px`` wide
    at scale 1."""
    k = scale * face_px / photo.size
    c = photo.landmarks[:, :2].mean(0)
    m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), roll_deg, k)
    m[:, 2] += centre - c
    return m


def _card_mask(photo: FacePhoto) -> np.ndarray:
    """The photo's own alpha: opaque, feathered at its border, so the card's edge is not a hard line."""
    h, w = photo.rgb.shape[:2]
    mask = np.zeros((h, w), np.float32)
    mask[8:-8, 8:-8] = 1.0
    return cv2.GaussianBlur(mask, (0, 0), 4.0)


def composite(canvas: np.ndarray, photo: FacePhoto, maps: list[np.ndarray]) -> np.ndarray:
    """``photo`` warped by each map of ``maps`` (an exposure), averaged, over ``canvas`` (float32)."""
    alpha_src = _card_mask(photo)
    colour = np.zeros_like(canvas)
    alpha = np.zeros(canvas.shape[:2], np.float32)
    for m in maps:
        colour += cv2.warpAffine(
            photo.rgb.astype(np.float32) * alpha_src[..., None],
            m,
            (WIDTH, HEIGHT),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        alpha += cv2.warpAffine(alpha_src, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    colour, alpha = colour / len(maps), alpha / len(maps)
    return colour + canvas * (1.0 - alpha[..., None])


def _truth(photo: FacePhoto, m: np.ndarray) -> np.ndarray:
    return photo.landmarks[:, :2] @ m[:, :2].T + m[:, 2]


@dataclass
class _Path:
    """One face's motion: a Lissajous sway (a head moving to and fro, slowing only to turn round),
    and sinusoidal roll and scale, each with its own period and phase."""

    centre: np.ndarray
    amp: np.ndarray  # px, x and y
    period: np.ndarray  # frames, x and y
    phase: np.ndarray
    roll_amp: float
    roll_period: float
    roll_phase: float
    scale_amp: float
    scale_period: float
    scale_phase: float

    def pose(self, t: float) -> tuple[np.ndarray, float, float]:
        """(centre, roll in degrees, scale) at frame time ``t`` (in frames)."""
        centre = self.centre + self.amp * np.sin(2 * np.pi * t / self.period + self.phase)
        roll = self.roll_amp * np.sin(2 * np.pi * t / self.roll_period + self.roll_phase)
        scale = 1.0 + self.scale_amp * np.sin(2 * np.pi * t / self.scale_period + self.scale_phase)
        return centre, float(roll), float(scale)

    def mean_speed(self, frames: int) -> float:
        """Mean speed of the face centre over ``frames`` frames, px per frame."""
        pts = np.array([self.pose(t)[0] for t in np.arange(frames + 1)])
        return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).mean())


def _random_path(
    rng: np.random.Generator, speed: float, lo: np.ndarray, hi: np.ndarray, roll: float = 15.0, scale: float = 0.15
) -> _Path:
    """A path inside the box ``lo``..``hi`` whose mean speed is about ``speed`` px a frame (a sine of
    amplitude A and period P moves 4A/P px a frame on average)."""
    half = (hi - lo) / 2
    amp = half * rng.uniform([0.8, 0.5], [1.0, 1.0])
    share = rng.uniform(0.75, 0.9)  # most of the speed is sideways, as with a swaying head
    period = 4 * amp / (speed * np.array([share, np.sqrt(1 - share**2)]))
    return _Path(
        lo + half,
        amp,
        period,
        rng.uniform(0, 2 * np.pi, 2),
        roll,
        rng.uniform(30, 50),
        rng.uniform(0, 2 * np.pi),
        scale,
        rng.uniform(35, 60),
        rng.uniform(0, 2 * np.pi),
    )


def _occluder(rng: np.random.Generator, face_px: float) -> tuple[np.ndarray, np.ndarray]:
    """A hand-sized block: an (h, w, 3) float colour patch and its (h, w) alpha (rounded corners)."""
    w, h = int(face_px * rng.uniform(0.55, 0.75)), int(face_px * rng.uniform(0.7, 0.9))
    if rng.random() < 0.5:
        colour = np.full(3, rng.uniform(100, 160), np.float32)  # a grey block
    else:
        colour = np.array([rng.uniform(170, 230), rng.uniform(120, 170), rng.uniform(95, 140)], np.float32)
    patch = np.broadcast_to(colour, (h, w, 3)).astype(np.float32)
    patch = patch + rng.normal(0, 6, (h, w, 3)).astype(np.float32)  # some texture, like skin or cloth
    alpha = np.zeros((h, w), np.float32)
    r = min(w, h) // 4
    cv2.rectangle(alpha, (r, 0), (w - r, h), 1.0, -1)
    cv2.rectangle(alpha, (0, r), (w, h - r), 1.0, -1)
    for cx, cy in ((r, r), (w - r, r), (r, h - r), (w - r, h - r)):
        cv2.circle(alpha, (cx, cy), r, 1.0, -1)
    return patch, cv2.GaussianBlur(alpha, (0, 0), 1.5)


def _face_cover(truth: np.ndarray, block: np.ndarray | None) -> float:
    """Share of the face's landmarks inside the occluder's opaque part ((H, W) alpha or None)."""
    if block is None:
        return 0.0
    xy = np.round(truth).astype(int)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < WIDTH) & (xy[:, 1] >= 0) & (xy[:, 1] < HEIGHT)
    hit = np.zeros(len(xy), bool)
    hit[inside] = block[xy[inside, 1], xy[inside, 0]] > 0.5
    return float(hit.mean())


def make_sequence(
    name: str,
    photos: list[FacePhoto],
    seed: int,
    frames: int = 60,
    face_px: float = 220.0,
    noise: float = 3.0,
    speed: float | None = None,
) -> Sequence:
    """One sequence of ``name`` (see :data:`SEQUENCES`) drawn from ``seed``; ``speed`` (px a frame)
    replaces the ``fast`` sequence's own range (a headroom check: twice the speed, say)."""
    if name not in SEQUENCES:
        raise ValueError(f"unknown sequence {name!r} (known: {', '.join(SEQUENCES)})")
    rng = np.random.default_rng(seed)
    back = background(rng).astype(np.float32)
    margin = np.array([face_px * 0.9, face_px * 0.85])
    full_lo, full_hi = margin, np.array([WIDTH, HEIGHT]) - margin
    faces: list[tuple[FacePhoto, _Path]] = []
    order = rng.permutation(len(photos))
    if name == "fast":
        faces.append((photos[order[0]], _random_path(rng, speed or rng.uniform(34.0, 42.0), full_lo, full_hi)))
    elif name == "occluder":
        path = _random_path(rng, rng.uniform(4.0, 10.0), full_lo, full_hi, roll=8.0, scale=0.08)
        faces.append((photos[order[0]], path))
    elif name == "still":
        centre = np.array([WIDTH / 2, HEIGHT / 2])
        faces.append((photos[order[0]], _Path(centre, np.zeros(2), np.ones(2), np.zeros(2), 0, 1, 0, 0, 1, 0)))
    else:  # two people, one in each half of the frame, each on its own path
        half = WIDTH / 2
        for i in range(2):
            lo = np.array([i * half + face_px * 0.75, margin[1]])
            hi = np.array([(i + 1) * half - face_px * 0.75, HEIGHT - margin[1]])
            faces.append(
                (
                    photos[order[i % len(photos)]],
                    _random_path(rng, rng.uniform(6.0, 14.0), lo, hi, roll=10.0, scale=0.1),
                )
            )
    block = block_alpha = None
    block_path: tuple[np.ndarray, np.ndarray, int] | None = None
    if name == "occluder":
        block, block_alpha = _occluder(rng, face_px)
        enter = int(rng.integers(frames // 4, frames // 2))
        # the block crosses the face from one side to the other in about 10 frames
        side = rng.choice([-1.0, 1.0])
        start = np.array([side * face_px * 1.6, rng.uniform(-0.2, 0.2) * face_px])
        block_path = (start, -start / rng.uniform(8.0, 12.0) * 2.0, enter)
    seq = Sequence(name, seed, speed=float(np.mean([path.mean_speed(frames) for _, path in faces])))
    for i in range(frames):
        canvas = back.copy()
        truths = []
        for photo, path in faces:
            # an exposure of half a frame: three sub-frame warps averaged, the middle one is the truth
            maps = [similarity(photo, *path.pose(i + dt), face_px) for dt in (-0.25, 0.0, 0.25)]
            canvas = composite(canvas, photo, maps)
            truths.append(_truth(photo, maps[1]))
        covers = [0.0] * len(faces)
        if block is not None and block_path is not None and block_alpha is not None:
            start, vel, enter = block_path
            k = i - enter
            if 0 <= k <= 20:
                face_centre = truths[0].mean(0)
                centre = face_centre + start + vel * k
                full = np.zeros((HEIGHT, WIDTH), np.float32)
                bh, bw = block_alpha.shape
                x0, y0 = int(centre[0] - bw / 2), int(centre[1] - bh / 2)
                xs, ys = slice(max(0, x0), min(WIDTH, x0 + bw)), slice(max(0, y0), min(HEIGHT, y0 + bh))
                sub = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
                if ys.stop > ys.start and xs.stop > xs.start:
                    full[ys, xs] = block_alpha[sub]
                    a = full[ys, xs, None]
                    canvas[ys, xs] = canvas[ys, xs] * (1 - a) + block[sub] * a
                covers = [_face_cover(t, full) for t in truths]
        canvas += rng.normal(0.0, noise, canvas.shape).astype(np.float32)
        seq.frames.append(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
        seq.truth.append(truths)
        seq.covered.append(covers)
    return seq
