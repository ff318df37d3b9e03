#!/usr/bin/env bash
# Runs every test. When some fail, what each failure recorded is repeated at the end of the
# output (the full output stays in .build/test-output.log), so it is found without scrolling.
set -uo pipefail
cd "$(dirname "$0")/.."
swift="${SWIFT:-swift}"
mkdir -p .build
log=.build/test-output.log
"$swift" test 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo
    echo "=== what failed (the whole output is in $log) ==="
    grep -E -A6 "recorded an issue|error:|Fatal error|Assertion failed|Test .* failed" "$log" | cut -c1-600 | head -150
fi
exit "$status"
