#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite. Prints a closing
# "N passed, N failed" line. Extra args go to `meson test`.
# BUILD_DIR=... chooses the build directory; MESON_ARGS=... adds setup options.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
# shellcheck disable=SC2086
BUILD_DIR="$BUILD_DIR" scripts/setup.sh ${MESON_ARGS:-} || exit 1
meson test -C "$BUILD_DIR" --print-errorlogs --num-processes 2 "$@"
rc=$?
# summary from meson's JSON log
/usr/bin/python3 - "$BUILD_DIR/meson-logs/testlog.json" <<'PY' || true
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r == "OK" or r == "EXPECTEDFAIL": p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(f"tests: {p} passed, {f} failed, {s} skipped")
PY
exit $rc
