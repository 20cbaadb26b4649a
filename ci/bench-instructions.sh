#!/usr/bin/env bash
# Counts the instructions per request of the hot paths under callgrind
# (stable on a noisy machine, unlike wall-clock benchmarks) and writes the
# table to bench/results/instructions.md. Options go to
# bench/instructions.py, e.g. ci/bench-instructions.sh --requests 500
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_packages valgrind
ci/build.sh
exec /usr/bin/python3 bench/instructions.py "$@"
