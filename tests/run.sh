#!/bin/sh
# Runs each test program given as an argument inside a scratch directory,
# prints one line per program and a summary, and exits non-zero when any
# failed. Logs stay next to the programs.
work=$(mktemp -d "${TMPDIR:-/tmp}/mmsb-run-XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
failed=""
count=0
for t in "$@"; do
    count=$((count + 1))
    abs=$(cd "$(dirname "$t")" && pwd)/$(basename "$t")
    log="${abs}.${TEST_LOG_TAG:-run}.log"
    (cd "$work" && "$abs") >"$log" 2>&1
    status=$?
    if [ "$status" -eq 0 ]; then
        echo "PASS  $t"
    else
        # A program killed by a signal leaves no word of it in its log.
        if [ "$status" -gt 128 ]; then echo "(exit status $status: signal $((status - 128)))" >>"$log"; fi
        echo "FAIL  $t (log: $log)"
        sed 's/^/      /' "$log" | tail -n 40
        failed="$failed $t"
    fi
done
if [ -n "$failed" ]; then
    echo "tests: $count programs, failed:$failed"
    exit 1
fi
echo "tests: all $count programs passed"
