"""The inference stages as pure functions (crop/resize, heatmap -> box) and the model wrappers.

Training imports ``prepare_input`` so that a model is trained on exactly the pixels the app
feeds it: crop the frame to a rectangle, resize to the model's input size (stretch or
letterbox, OpenCV INTER_AREA when shrinking and INTER_LINEAR when enlarging), keep BGR uint8.
Colour is never converted here; the ONNX graph does it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from app.core.contract import TASK_CLASSIFIER, TASK_DETECTOR, InputSpec
from app.core.errors import ModelContractError
from app.core.geometry import BOX_THRESHOLD, Box, box_from_heatmap, clip_box, scale_box

if TYPE_CHECKING:
    from app.core.models import OnnxModel

Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class Transform:
    """How model-input pixels map back to frame pixels: ``x_frame = x_model * sx + dx``.

    Attributes:
        sx, sy, dx, dy: the affine map from model-input to frame coordinates.
        input_size: model input ``(width, height)``.
        content: ``(x, y, w, h)`` of the resized crop inside the model input (the whole input
            for "stretch"; the area between the padding bars for "letterbox").
        rect: the frame rectangle that was cropped, ``(x, y, w, h)``.
    """

    sx: float
    sy: float
    dx: float
    dy: float
    input_size: tuple[int, int]
    content: Rect
    rect: Rect

    def to_frame(self, box: Box, map_size: tuple[int, int] | None = None) -> Box:
        """Map a box from a map covering the model input into frame pixels.

        Args:
            box: COCO box in map pixels.
            map_size: the map's ``(w, h)``; None means the model input itself (a heatmap may
                be a fraction of it).
        """
        mw, mh = map_size or self.input_size
        kx, ky = self.input_size[0] / mw, self.input_size[1] / mh
        return scale_box(box, kx * self.sx, ky * self.sy, self.dx, self.dy)

    def crop_map(self, values: np.ndarray) -> np.ndarray:
        """The part of a map (covering the model input) that covers ``rect``.

        This drops letterbox padding, so the result can be stretched over ``rect``.
        """
        mh, mw = values.shape[:2]
        kx, ky = mw / self.input_size[0], mh / self.input_size[1]
        x, y, w, h = self.content
        x0, y0 = int(math.floor(x * kx)), int(math.floor(y * ky))
        x1, y1 = int(math.ceil((x + w) * kx)), int(math.ceil((y + h) * ky))
        return values[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]


def _rect_or_frame(image: np.ndarray, rect: Rect | None) -> Rect:
    height, width = image.shape[:2]
    if rect is None:
        return 0, 0, width, height
    x, y, w, h = (int(v) for v in rect)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, width), min(y + h, height)
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise ValueError(f"crop rectangle {rect} lies outside the {width}x{height} frame")
    return x0, y0, x1 - x0, y1 - y0


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width < image.shape[1] or height < image.shape[0]
    return cv2.resize(
        image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )


def prepare_input(
    image: np.ndarray, roi: Rect | None, spec: InputSpec
) -> tuple[np.ndarray, Transform]:
    """Crop a BGR frame to ``roi`` and resize it to the model input, without colour changes.

    "stretch" resizes the crop to (H, W) exactly. "letterbox" keeps the aspect ratio, centres
    the crop and pads with black (the colour of the endoscope's border).

    Args:
        image: BGR uint8 (H, W, 3) frame.
        roi: integer ``(x, y, w, h)`` rectangle to crop (clipped to the frame); None = frame.
        spec: the model's input spec (height, width, resize).

    Returns:
        ``(pixels, transform)``: a contiguous uint8 (spec.height, spec.width, 3) array and the
        map from its coordinates back to frame coordinates.

    Raises:
        ValueError: for an image that is not (H, W, 3) uint8 or a ROI outside it.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be BGR uint8 (H, W, 3), got {image.dtype} {image.shape}")
    x, y, w, h = rect = _rect_or_frame(image, roi)
    crop = image[y : y + h, x : x + w]
    width, height = spec.width, spec.height
    if spec.resize == "letterbox":
        scale = min(width / w, height / h)
        nw, nh = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
        px, py = (width - nw) // 2, (height - nh) // 2
        pixels = np.zeros((height, width, 3), np.uint8)
        pixels[py : py + nh, px : px + nw] = _resize(crop, nw, nh)
        sx, sy = w / nw, h / nh
        transform = Transform(
            sx, sy, x - px * sx, y - py * sy, (width, height), (px, py, nw, nh), rect
        )
    else:
        pixels = np.ascontiguousarray(_resize(crop, width, height))
        transform = Transform(
            w / width, h / height, float(x), float(y), (width, height), (0, 0, width, height), rect
        )
    return pixels, transform


@dataclass(frozen=True, eq=False)
class Detection:
    """A detector's verdict on one frame, in frame pixels.

    Attributes:
        box: COCO box in frame pixels (clipped to the cropped rectangle), or None if the peak
            is below ``min_peak`` or the map is flat.
        peak: the raw heatmap peak.
        heatmap: float32 map in [0, 1] covering ``rect`` (letterbox padding removed).
        rect: the frame rectangle the detector saw.
        timings_ms: ``preprocess``, ``detector``, ``postprocess`` (when run via ``Detector``).
    """

    box: Box | None
    peak: float
    heatmap: np.ndarray
    rect: Rect
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class RawDetection:
    """A detector's raw output for one frame, before postprocessing (see ``Detector.infer``).

    Attributes:
        heatmap: the (h, w) heatmap covering the model input.
        transform: the crop/resize that made the input.
        timings_ms: ``preprocess`` and ``detector``.
    """

    heatmap: np.ndarray
    transform: Transform
    timings_ms: dict[str, float] = field(default_factory=dict)


def postprocess_heatmap(
    heatmap: np.ndarray,
    transform: Transform,
    threshold: float = BOX_THRESHOLD,
    min_peak: float = 0.0,
) -> Detection:
    """Turn one heatmap (h, w) covering the model input into a Detection in frame pixels.

    Uses ``geometry.box_from_heatmap`` in heatmap pixels, then maps through the heatmap ->
    input scale and the crop/resize transform, and clips to the cropped rectangle.
    """
    hm = np.asarray(heatmap, dtype=np.float32)
    if hm.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (h, w), got shape {hm.shape}")
    # Padding bars of a letterbox input are not image: ignore any heat the model put there.
    content = transform.crop_map(hm)
    mh, mw = hm.shape
    kx, ky = mw / transform.input_size[0], mh / transform.input_size[1]
    cx, cy = int(math.floor(transform.content[0] * kx)), int(math.floor(transform.content[1] * ky))
    box_hm, peak = box_from_heatmap(content, threshold)
    box = None
    if box_hm is not None and peak >= min_peak:
        shifted = (box_hm[0] + cx, box_hm[1] + cy, box_hm[2], box_hm[3])
        rx, ry, rw, rh = transform.rect
        mapped = transform.to_frame(shifted, (mw, mh))
        clipped = clip_box((mapped[0] - rx, mapped[1] - ry, mapped[2], mapped[3]), rw, rh)
        box = (
            None if clipped is None else (clipped[0] + rx, clipped[1] + ry, clipped[2], clipped[3])
        )
    return Detection(box, float(peak), np.clip(content, 0.0, 1.0), transform.rect)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class Detector:
    """Runs a detector model on frames: crop/resize, model, heatmap -> box.

    Args:
        model: an ``OnnxModel`` (or anything with ``.info`` and ``.run``) of task
            ``ampulla-heatmap``.
        min_peak: presence threshold; None uses the model's ``ercp.min_peak``.
        box_threshold: box threshold; None uses the model's ``ercp.box_threshold``.
    """

    def __init__(
        self, model: OnnxModel, min_peak: float | None = None, box_threshold: float | None = None
    ) -> None:
        if model.info.task != TASK_DETECTOR:
            raise ModelContractError(
                f"model {model.info.label}: expected a detector "
                f"({TASK_DETECTOR!r}), found {model.info.task!r}"
            )
        self.model = model
        self.min_peak = float(model.info.min_peak if min_peak is None else min_peak)
        self.box_threshold = float(
            model.info.box_threshold if box_threshold is None else box_threshold
        )

    def infer(self, image: np.ndarray, roi: Rect | None = None) -> RawDetection:
        """The first half of ``predict``: crop/resize and run the model (no postprocess)."""
        t0 = time.perf_counter()
        pixels, transform = prepare_input(image, roi, self.model.info.input)
        t1 = time.perf_counter()
        heatmap = self.model.run(pixels[None])["heatmap"][0, 0]
        timings = {"preprocess": (t1 - t0) * 1000.0, "detector": _ms(t1)}
        return RawDetection(heatmap, transform, timings)

    def finish(self, raw: RawDetection) -> Detection:
        """The second half of ``predict``: heatmap -> box in frame pixels, presence check."""
        t0 = time.perf_counter()
        det = postprocess_heatmap(raw.heatmap, raw.transform, self.box_threshold, self.min_peak)
        timings = {**raw.timings_ms, "postprocess": _ms(t0)}
        return Detection(det.box, det.peak, det.heatmap, det.rect, timings)

    def predict(self, image: np.ndarray, roi: Rect | None = None) -> Detection:
        """Detect the papilla in a BGR frame, looking only inside ``roi`` (None = whole frame)."""
        return self.finish(self.infer(image, roi))


@dataclass(frozen=True, eq=False)
class ClassifierResult:
    """A classifier's verdict on one frame.

    Attributes:
        probs: class name -> probability, in the model's class order.
        label: the most probable class.
        cam: float32 CAM in [0, 1] covering ``cam_region``, or None.
        cam_region: frame rectangle the classifier saw (and the CAM covers).
        region: what was cropped: ``"field"``, ``"box"``, or ``"field (no box)"`` when the
            model asks for a box crop but there was no detection.
        timings_ms: ``classifier_preprocess`` and ``classifier``.
    """

    probs: dict[str, float]
    label: str
    cam: np.ndarray | None
    cam_region: Rect
    region: str
    timings_ms: dict[str, float] = field(default_factory=dict)


def classifier_region(box: Box | None, margin: float | None, field_rect: Rect) -> tuple[Rect, str]:
    """The rectangle a classifier should see.

    With a ``margin`` (``ercp.region = {"box_margin": m}``) and a box: the box grown by
    m x its width/height on each side, rounded outward to whole pixels and clipped to the
    field. Otherwise the field; ``"field (no box)"`` says the box crop was wanted.
    """
    if margin is None:
        return field_rect, "field"
    if box is None:
        return field_rect, "field (no box)"
    x, y, w, h = box
    fx, fy, fw, fh = field_rect
    x0, y0 = max(math.floor(x - margin * w), fx), max(math.floor(y - margin * h), fy)
    x1 = min(math.ceil(x + w + margin * w), fx + fw)
    y1 = min(math.ceil(y + h + margin * h), fy + fh)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return field_rect, "field (no box)"
    return (int(x0), int(y0), int(x1 - x0), int(y1 - y0)), "box"


class Classifier:
    """Runs a difficulty classifier on the field or on a crop around the detected box.

    Args:
        model: an ``OnnxModel`` (or anything with ``.info`` and ``.run``) of task ``difficulty``.
    """

    def __init__(self, model: OnnxModel) -> None:
        if model.info.task != TASK_CLASSIFIER:
            raise ModelContractError(
                f"model {model.info.label}: expected a classifier "
                f"({TASK_CLASSIFIER!r}), found {model.info.task!r}"
            )
        self.model = model
        region = model.info.region
        self.margin = None if region == "field" else float(region["box_margin"])

    def predict(
        self, image: np.ndarray, roi: Rect | None = None, box: Box | None = None
    ) -> ClassifierResult:
        """Classify a BGR frame; ``roi`` is the endoscopic field, ``box`` the detection."""
        t0 = time.perf_counter()
        field_rect = _rect_or_frame(image, roi)
        rect, region = classifier_region(box, self.margin, field_rect)
        pixels, transform = prepare_input(image, rect, self.model.info.input)
        t1 = time.perf_counter()
        out = self.model.run(pixels[None])
        probs_row = np.asarray(out["probs"][0], dtype=np.float64)
        classes = self.model.info.classes
        probs = {name: float(p) for name, p in zip(classes, probs_row, strict=True)}
        cam = None
        if "cam" in out:
            cam = np.clip(transform.crop_map(np.asarray(out["cam"][0], np.float32)), 0.0, 1.0)
        label = classes[int(np.argmax(probs_row))]
        timings = {"classifier_preprocess": (t1 - t0) * 1000.0, "classifier": _ms(t1)}
        return ClassifierResult(probs, label, cam, transform.rect, region, timings)
