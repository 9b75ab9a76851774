#!/usr/bin/env bash
# Build the one-folder app into dist/ercp-assist/ and check that it runs `process --demo` headless.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
"$python" -m pip install -q -e '.[package]'
"$python" -m PyInstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller \
  packaging/ercp_assist.spec
out=$(mktemp -d)
QT_QPA_PLATFORM=offscreen dist/ercp-assist/ercp-assist process --demo --out "$out"
test -s "$out/annotated.mp4" && test -s "$out/predictions.jsonl"
echo "frozen app OK: dist/ercp-assist ($(du -sh dist/ercp-assist | cut -f1)); demo output in $out"
