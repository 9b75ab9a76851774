"""``ercp-assist devices``: list the attached capture devices (and optionally what they give)."""

from __future__ import annotations

import argparse
import json

HELP = "list attached capture devices (capture cards, cameras) with their names"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``devices``."""
    parser.add_argument(
        "--probe",
        action="store_true",
        help="open each device briefly and report the resolution, fps and FOURCC it gives",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--max-index",
        type=int,
        default=8,
        metavar="N",
        help="indices to probe where the platform cannot list devices (default 8)",
    )


def _probe(index: int) -> dict:
    import cv2

    from app.core.sources_device import BACKENDS, default_backend, fourcc_to_str

    cap = cv2.VideoCapture(index, BACKENDS[default_backend()])
    try:
        if not cap.isOpened():
            return {"opens": False}
        return {
            "opens": True,
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "fps": round(float(cap.get(cv2.CAP_PROP_FPS)), 2),
            "fourcc": fourcc_to_str(cap.get(cv2.CAP_PROP_FOURCC)),
        }
    finally:
        cap.release()


def run(args: argparse.Namespace) -> int:
    """List the devices; an empty list is not an error (exit 0)."""
    from app.core.sources_device import default_backend, list_devices

    devices = list_devices(max_index=args.max_index)
    rows = []
    for dev in devices:
        row = {"spec": dev.spec, "index": dev.index, "path": dev.path, "name": dev.name}
        if args.probe:
            row.update(_probe(dev.index))
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(
            "no capture devices found; plug in the capture card (on Linux check that "
            "/dev/video* exists and that you are in the 'video' group), or use "
            "--source phantom / a video file"
        )
        return 0
    print(f"backend: {default_backend()}")
    for row in rows:
        line = f"{row['spec']:<10} {row['path'] or '-':<14} {row['name']}"
        if args.probe:
            if row["opens"]:
                line += f"  [{row['width']}x{row['height']} @ {row['fps']} fps {row['fourcc']}]"
            else:
                line += "  [cannot open: busy or no signal]"
        print(line)
    return 0
