#!/usr/bin/env bash
# Build the HTML documentation with warnings as errors.
#   docs/build.sh          run every example of the gallery (minutes on 2 cores)
#   docs/build.sh --fast   do not run the examples (plot_gallery=0)
# Extra arguments are passed to sphinx-build. Output: docs/_build/html.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
args=()
if [ "${1:-}" = "--fast" ]; then
  shift
  args+=(-D plot_gallery=0)
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m sphinx -W --keep-going -b html "${args[@]}" "$@" docs docs/_build/html
