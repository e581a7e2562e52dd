"""ArcFace alignment from five keypoints, its inverse, and the soft paste-back onto the frame's ROI.

Written once against the array module of the frame (numpy here, cupy on a GPU): the only primitive
that differs per module is the bilinear affine warp (OpenCV's for numpy, ``cupyx.scipy.ndimage`` for
cupy), and both implement the same mapping, which ``warp_affine_ndimage`` pins in the tests by running
the cupy formulation on numpy through ``scipy.ndimage``.

Conventions (OpenCV's): a 2x3 matrix ``M`` maps *frame* pixel coordinates (x, y) to *crop*
coordinates, pixel centres at integers; ``crop(p) = frame(M⁻¹ p)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facefusion_obs.runtime.xp import module_of

# insightface's ``arcface_dst``: where the eyes, nose tip and mouth corners of an aligned 112x112 face
# sit. Order: image-left eye, image-right eye, nose tip, image-left mouth corner, image-right corner.
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)

# The 468-point MediaPipe mesh has no "eye centre" point, so each eye is the mean of its 16-point
# contour ring (robust to blinks shifting the lids symmetrically); the nose tip is point 1 and the
# mouth corners are points 61 and 291 (the ends of the outer lip line). Subject's right eye (33/133
# ring) is the image-left one for a camera that is not mirrored, matching insightface's order.
MESH_RIGHT_EYE_RING = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
MESH_LEFT_EYE_RING = (362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398)
MESH_NOSE_TIP = 1
MESH_MOUTH_RIGHT_CORNER = 61  # subject's right: image-left
MESH_MOUTH_LEFT_CORNER = 291


def arcface_template(size: int) -> np.ndarray:
    """The five-point target for a ``size`` crop, as insightface's ``estimate_norm`` builds it.

    112-multiples scale the template; 128-multiples (inswapper) keep the 112 face scale·size/128 and
    shift it right by 8·size/128, i.e. the 112 face centred in a wider crop, which is how inswapper_128
    was trained: a crop built any other way (for instance the 112 template scaled by 128/112) feeds the
    model faces at the wrong scale.
    """
    if size % 112 == 0:
        return ARCFACE_112 * (size / 112.0)
    if size % 128 == 0:
        ratio = size / 128.0
        out = ARCFACE_112 * ratio
        out[:, 0] += 8.0 * ratio
        return out
    raise ValueError(f"arcface crop size {size} is not a multiple of 112 or 128")


def five_from_mesh(landmarks: Any) -> np.ndarray:
    """The five arcface keypoints (5x2, float64, host) from a 468-point mesh ((468, 2) or (468, 3))."""
    points = np.asarray(landmarks if isinstance(landmarks, np.ndarray) else _host(landmarks), np.float64)
    if points.ndim != 2 or points.shape[0] < 468 or points.shape[1] < 2:
        raise ValueError(f"expected 468 mesh landmarks as (468, 2|3), got shape {points.shape}")
    xy = points[:, :2]
    return np.stack([xy[list(MESH_RIGHT_EYE_RING)].mean(axis=0), xy[list(MESH_LEFT_EYE_RING)].mean(axis=0),
                     xy[MESH_NOSE_TIP], xy[MESH_MOUTH_RIGHT_CORNER], xy[MESH_MOUTH_LEFT_CORNER]])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping src → dst.

    Umeyama's closed form, the same estimate as skimage's SimilarityTransform that insightface uses,
    without pulling scikit-image into the worker.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"need matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    var = (s**2).sum() / len(src)
    if var <= 0:
        raise ValueError("degenerate keypoints: all five points coincide")
    scale = np.trace(np.diag(sig) @ sign) / var
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def estimate_norm(five: np.ndarray, size: int) -> np.ndarray:
    """Frame → crop matrix putting ``five`` keypoints on the arcface template of a ``size`` crop."""
    return similarity_transform(five, arcface_template(size))


def invert_affine(m: np.ndarray) -> np.ndarray:
    a = np.asarray(m, np.float64)[:, :2]
    inv = np.linalg.inv(a)
    out = np.empty((2, 3))
    out[:, :2] = inv
    out[:, 2] = -inv @ np.asarray(m, np.float64)[:, 2]
    return out


def transform_points(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64)
    return points @ np.asarray(m, np.float64)[:, :2].T + np.asarray(m, np.float64)[:, 2]


def warp_affine(image: Any, m: np.ndarray, size: tuple[int, int]) -> Any:
    """Bilinear warp, ``out(p) = image(M⁻¹ p)``, out of bounds = 0; ``size`` is (width, height).

    numpy goes to OpenCV (its SIMD warp costs microseconds for a 128 crop); cupy to cupyx's ndimage,
    which ``warp_affine_ndimage`` drives with the equivalent matrix.
    """
    xp = module_of(image)
    if xp is np:
        import cv2

        return cv2.warpAffine(image, np.asarray(m, np.float64), (int(size[0]), int(size[1])),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    import cupyx.scipy.ndimage as ndi  # type: ignore[import-not-found]

    return warp_affine_ndimage(image, m, size, ndi)


def warp_affine_ndimage(image: Any, m: np.ndarray, size: tuple[int, int], ndi: Any) -> Any:
    """The GPU warp, written against an ndimage module (cupyx's on a GPU, scipy's in tests).

    ndimage maps output index → input index in (row, col) order, so the OpenCV matrix is inverted and
    its axes swapped; the channel axis maps to itself. Interpolation runs in float32 and is rounded
    back for uint8 images, as OpenCV does.
    """
    xp = module_of(image)
    inv = invert_affine(m)
    two_d = image.ndim == 2
    rank = 2 if two_d else 3
    matrix = np.eye(rank)
    matrix[0, 0], matrix[0, 1] = inv[1, 1], inv[1, 0]
    matrix[1, 0], matrix[1, 1] = inv[0, 1], inv[0, 0]
    offset = np.zeros(rank)
    offset[0], offset[1] = inv[1, 2], inv[0, 2]
    shape = (int(size[1]), int(size[0])) + (() if two_d else (image.shape[2],))
    src = image.astype(xp.float32, copy=False)
    out = ndi.affine_transform(src, xp.asarray(matrix), offset=tuple(offset), output_shape=shape, order=1,
                               mode="constant", cval=0.0)
    if image.dtype == xp.uint8:
        return xp.clip(out + 0.5, 0, 255).astype(xp.uint8)
    return out.astype(image.dtype, copy=False)


def align_crop(frame: Any, five: np.ndarray, size: int) -> tuple[Any, np.ndarray]:
    """The arcface-aligned ``size`` crop of ``frame`` (same array module) and its frame → crop matrix."""
    m = estimate_norm(five, size)
    return warp_affine(frame, m, (size, size)), m


MASK_INSET = 0.1  # share of the crop, per side, that the paste never uses
MASK_FEATHER = 0.06


def soft_crop_mask(size: int, xp: Any = np) -> Any:
    """Paste-back weight in crop space (size x size float32, 0..1): 1 on the face, 0 near the crop border.

    insightface erodes the warped crop box by ~10 % of its size and blurs by ~5 %; doing it once in crop
    space gives the same shape at every face size (the warp scales it) and costs nothing per frame.
    Everything within ``MASK_INSET`` of the border is exactly 0, so the paste never shows the crop's edge
    and the ROI can shrink to the mask's support.
    """
    axis = np.arange(size, dtype=np.float64) + 0.5
    dist = np.minimum(axis, size - axis) - MASK_INSET * size  # distance inside the inset box
    ramp = np.clip(dist / (MASK_FEATHER * size), 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep: no visible Mach band at the ramp's ends
    return xp.asarray(np.outer(ramp, ramp).astype(np.float32))


def roi_of(m: np.ndarray, size: int, frame_shape: tuple[int, ...],
           inset: float = 0.0) -> tuple[int, int, int, int] | None:
    """The frame rectangle (x0, y0, x1, y1) covered by the crop minus ``inset`` crop pixels per side,
    plus one pixel for bilinear reach, clipped to the frame; None when it lies outside."""
    lo, hi = inset - 1.0, size - inset
    corners = np.array([[lo, lo], [hi, lo], [lo, hi], [hi, hi]], np.float64)
    pts = transform_points(invert_affine(m), corners)
    h, w = frame_shape[:2]
    x0, y0 = max(int(np.floor(pts[:, 0].min())) - 1, 0), max(int(np.floor(pts[:, 1].min())) - 1, 0)
    x1, y1 = min(int(np.ceil(pts[:, 0].max())) + 2, w), min(int(np.ceil(pts[:, 1].max())) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def paste_back(frame: Any, crop: Any, m: np.ndarray, mask: Any, face_mask: Any | None = None) -> Any:
    """Blend ``crop`` (size x size x 3 uint8) into ``frame`` in place through the warped soft ``mask``.

    Only the ROI under the mask's support is read, warped and written; the rest of the frame is untouched
    (a test pins that). ``face_mask`` (H x W float32), when given, receives max(existing, warped mask)
    over the ROI: the matting's "keep this opaque" region. Returns ``frame``.
    """
    xp = module_of(frame)
    size = crop.shape[0]
    roi = roi_of(m, size, frame.shape, inset=MASK_INSET * size)
    if roi is None:
        return frame
    x0, y0, x1, y1 = roi
    crop_to_roi = invert_affine(m)
    crop_to_roi[:, 2] -= (x0, y0)
    roi_size = (x1 - x0, y1 - y0)
    fg = warp_affine(crop, crop_to_roi, roi_size)
    alpha = warp_affine(mask, crop_to_roi, roi_size)
    region = frame[y0:y1, x0:x1]
    blend_into(region, fg, alpha)
    if face_mask is not None:
        target = face_mask[y0:y1, x0:x1]
        xp.maximum(target, alpha, out=target)
    return frame


def blend_into(region: Any, fg: Any, alpha: Any) -> None:
    """``region ← region + (fg − region)·alpha`` in place, uint8 images, float32 alpha (H x W, 0..1).

    numpy uses OpenCV's ``blendLinear`` (measured 0.4 ms against 2.9 ms for the numpy arithmetic on a
    386² ROI: numpy's temporaries would eat most of the 4 ms budget); cupy runs ``blend_xp``, one fused pass on
    the device. The tests hold the two to within one grey level of each other on numpy.
    """
    if module_of(region) is np:
        import cv2

        alpha = np.ascontiguousarray(alpha, dtype=np.float32)
        # dst=region writes straight into the frame's ROI view (rows are contiguous, OpenCV takes the
        # stride): 0.4 ms instead of 1.1 ms for a copy-out and copy-back on a 386² ROI
        out = cv2.blendLinear(np.ascontiguousarray(fg), region, alpha, 1.0 - alpha, dst=region)
        if not np.shares_memory(out, region):  # OpenCV had to allocate (unusual layout): copy back
            region[...] = out
        return
    blend_xp(region, fg, alpha)


def blend_xp(region: Any, fg: Any, alpha: Any) -> None:
    """The array-module blend (the GPU path; runs on numpy too, which is how the tests check it)."""
    xp = module_of(region)
    base = region.astype(xp.float32)
    out = fg.astype(xp.float32)
    out -= base
    out *= alpha[..., None]
    out += base
    out += 0.5
    region[...] = out.astype(xp.uint8)


def _host(array: Any) -> np.ndarray:
    from facefusion_obs.runtime.xp import to_numpy

    return to_numpy(array)
