"""ArcFace alignment, its inverse, paste-back on the ROI, and the GPU formulations run on numpy.

The cupy path cannot run here (no GPU); its two device primitives (``warp_affine_ndimage`` and
``blend_xp``) are written against an array/ndimage module, so they are run on numpy + scipy.ndimage
and held to the OpenCV results the CPU path uses.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage

from facefusion_obs.swap import align


def _face_keypoints(eye_distance: float, centre: tuple[float, float], roll: float) -> np.ndarray:
    t = align.ARCFACE_112 - align.ARCFACE_112.mean(axis=0)
    c, s = np.cos(roll), np.sin(roll)
    return t @ (np.array([[c, -s], [s, c]]).T * eye_distance / 35.24) + np.array(centre)


def test_template_128_is_insightfaces_shifted_112_template():
    t = align.arcface_template(128)
    np.testing.assert_allclose(t - align.ARCFACE_112, [[8.0, 0.0]] * 5)
    np.testing.assert_allclose(align.arcface_template(224), align.ARCFACE_112 * 2)
    with pytest.raises(ValueError, match="100"):
        align.arcface_template(100)


def test_similarity_is_exact_for_a_similar_face_and_never_reflects():
    five = _face_keypoints(90.0, (640.0, 360.0), roll=0.4)
    m = align.estimate_norm(five, 128)
    np.testing.assert_allclose(align.transform_points(m, five), align.arcface_template(128), atol=1e-9)
    assert np.linalg.det(m[:, :2]) > 0
    mirrored = five.copy()
    mirrored[:, 0] *= -1
    assert np.linalg.det(align.estimate_norm(mirrored, 128)[:, :2]) > 0


def test_point_round_trip_frame_crop_frame_is_exact():
    rng = np.random.default_rng(0)
    five = _face_keypoints(120.0, (900.0, 500.0), roll=-0.3) + rng.normal(0, 2.0, (5, 2))
    m = align.estimate_norm(five, 128)
    pts = rng.uniform(0, 1920, (50, 2))
    back = align.transform_points(align.invert_affine(m), align.transform_points(m, pts))
    np.testing.assert_allclose(back, pts, atol=1e-9)


def test_image_round_trip_locates_a_feature_to_sub_pixel():
    """A blob at a sub-pixel position, aligned into the crop and pasted back, lands where it was."""
    h, w = 720, 1280
    centre = np.array([655.37, 371.81])
    yy, xx = np.mgrid[0:h, 0:w]
    frame = np.zeros((h, w, 3), np.uint8)
    blob = 255.0 * np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * 9.0**2))
    frame[..., 1] = np.round(blob).astype(np.uint8)
    five = _face_keypoints(150.0, (640.0, 330.0), roll=0.35)
    crop, m = align.align_crop(frame, five, 128)

    def centroid(img):
        g = img[..., 1].astype(np.float64)
        ys, xs = np.mgrid[0:g.shape[0], 0:g.shape[1]]
        return np.array([(g * xs).sum(), (g * ys).sum()]) / g.sum()

    in_crop = centroid(crop)
    assert np.linalg.norm(align.transform_points(align.invert_affine(m), in_crop[None])[0] - centre) < 0.25
    out = np.zeros_like(frame)
    align.paste_back(out, crop, m, np.ones((128, 128), np.float32))
    assert np.linalg.norm(centroid(out) - centre) < 0.25


def test_five_points_from_the_mesh_use_eye_rings_nose_tip_and_mouth_corners():
    mesh = np.zeros((468, 3))
    mesh[list(align.MESH_RIGHT_EYE_RING), :2] = (100.0, 50.0)
    mesh[list(align.MESH_LEFT_EYE_RING), :2] = (160.0, 52.0)
    mesh[align.MESH_NOSE_TIP, :2] = (130.0, 90.0)
    mesh[align.MESH_MOUTH_RIGHT_CORNER, :2] = (108.0, 120.0)
    mesh[align.MESH_MOUTH_LEFT_CORNER, :2] = (152.0, 121.0)
    np.testing.assert_allclose(align.five_from_mesh(mesh),
                               [[100, 50], [160, 52], [130, 90], [108, 120], [152, 121]])
    with pytest.raises(ValueError, match=r"\(10, 2\)"):
        align.five_from_mesh(np.zeros((10, 2)))


def test_paste_back_changes_pixels_only_under_the_warped_mask():
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    before = frame.copy()
    five = _face_keypoints(110.0, (1500.0, 420.0), roll=0.5)
    _, m = align.align_crop(frame, five, 128)
    crop = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    face_mask = np.zeros(frame.shape[:2], np.float32)
    align.paste_back(frame, crop, m, align.soft_crop_mask(128), face_mask)

    changed = np.any(frame != before, axis=2)
    assert changed.sum() > 10_000
    assert not np.any(changed & (face_mask == 0)), "a pixel outside the soft mask changed"
    x0, y0, x1, y1 = align.roi_of(m, 128, frame.shape, inset=align.MASK_INSET * 128)
    outside = np.ones_like(changed)
    outside[y0:y1, x0:x1] = False
    assert not np.any(changed & outside) and not np.any(face_mask[outside])
    # where the mask is full the crop replaced the frame (up to bilinear resampling of random noise:
    # compare against the crop warped into the frame)
    warped = align.warp_affine(crop, align.invert_affine(m), (1920, 1080))
    full = face_mask > 0.999
    assert full.sum() > 5_000
    assert np.abs(frame[full].astype(int) - warped[full].astype(int)).max() <= 1


def test_paste_back_of_a_face_partly_outside_the_frame_and_wholly_outside():
    frame = np.full((360, 640, 3), 7, np.uint8)
    crop = np.full((128, 128, 3), 200, np.uint8)
    edge = align.estimate_norm(_face_keypoints(80.0, (10.0, 20.0), 0.0), 128)
    align.paste_back(frame, crop, edge, align.soft_crop_mask(128))
    assert frame.max() == 200 and frame[-1, -1, 0] == 7
    gone = align.estimate_norm(_face_keypoints(80.0, (-900.0, -900.0), 0.0), 128)
    untouched = np.full((360, 640, 3), 7, np.uint8)
    align.paste_back(untouched, crop, gone, align.soft_crop_mask(128))
    assert np.all(untouched == 7)


def test_soft_mask_is_zero_at_the_border_one_inside_and_monotone():
    mask = align.soft_crop_mask(128)
    assert mask.dtype == np.float32 and mask.shape == (128, 128)
    assert mask[:12].max() == 0 and mask[:, -12:].max() == 0
    assert mask[64, 64] == 1.0
    row = mask[64, :64]
    assert np.all(np.diff(row) >= 0)


def test_gpu_warp_formulation_matches_opencv():
    """warp_affine_ndimage is the cupy path's warp; run through scipy.ndimage it must equal OpenCV's."""
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:400, 0:500]
    smooth = np.stack([128 + 100 * np.sin(xx / 17.0 + c) * np.cos(yy / 23.0) for c in range(3)], axis=-1)
    image = np.clip(smooth + rng.normal(0, 2, smooth.shape), 0, 255).astype(np.uint8)
    m = align.estimate_norm(_face_keypoints(70.0, (250.0, 190.0), roll=0.6), 128)
    cv = align.warp_affine(image, m, (128, 128))
    nd = align.warp_affine_ndimage(image, m, (128, 128), scipy.ndimage)
    assert nd.dtype == np.uint8 and nd.shape == cv.shape
    assert np.abs(cv.astype(int) - nd.astype(int)).max() <= 2  # OpenCV's 5-bit fixed-point weights
    mask = align.soft_crop_mask(128)
    back = align.invert_affine(m)
    np.testing.assert_allclose(align.warp_affine_ndimage(mask, back, (500, 400), scipy.ndimage),
                               align.warp_affine(mask, back, (500, 400)), atol=2e-3)


def test_gpu_blend_formulation_matches_opencv_blend():
    rng = np.random.default_rng(9)
    region = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    fg = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    alpha = rng.random((97, 131), dtype=np.float32)
    alpha[:10] = 0.0
    alpha[-10:] = 1.0
    a, b = region.copy(), region.copy()
    align.blend_into(a, fg, alpha)  # numpy: OpenCV
    align.blend_xp(b, fg, alpha)  # the cupy formulation, run on numpy
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert np.array_equal(b[:10], region[:10]) and np.array_equal(b[-10:], fg[-10:])
