"""Faces: BlazeFace detection, 468-point landmarks on rotation-aligned crops, tracking and smoothing.

All models run on the CPU with LiteRT (1-2 ms each); ``FaceTracker`` is per stream (optical flow
predicts each face's crop, a consistency check decides per face and frame whether it may be swapped,
smoothing runs on frame time), the models behind it are shared by every tracker in the process.
"""

from facefusion_obs.faces.detector import FULL_RANGE, SHORT_RANGE, Detection, FaceDetector
from facefusion_obs.faces.landmarker import FaceLandmarker, Roi, roi_from_detection, roi_from_landmarks
from facefusion_obs.faces.smoothing import OneEuroFilter
from facefusion_obs.faces.tracker import Face, FaceTracker

__all__ = [
    "FULL_RANGE", "SHORT_RANGE", "Detection", "Face", "FaceDetector", "FaceLandmarker", "FaceTracker",
    "OneEuroFilter", "Roi", "roi_from_detection", "roi_from_landmarks",
]
