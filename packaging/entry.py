"""Entry point of the frozen ERCP Assist app: point the registry at the bundled models, then run."""

import os
import sys
from pathlib import Path

if getattr(sys, "frozen", False):
    bundle = Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent))
    os.environ.setdefault("ERCP_MODELS_DIR", str(bundle / "models"))

from app.cli import main  # noqa: E402  (the environment must be set before app.core loads)

if __name__ == "__main__":
    sys.exit(main())
