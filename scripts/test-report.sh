#!/usr/bin/env bash
# Reads a Swift Testing log (what `swift test` printed) and reports on it:
#   scripts/test-report.sh running LOG   the tests that started and have not ended (what a stopped run was doing)
#   scripts/test-report.sh longest LOG [N]  the N (default 5) tests that ran longest, slowest first
set -euo pipefail
what="${1:?usage: test-report.sh running|longest LOG [N]}"
log="${2:?usage: test-report.sh running|longest LOG [N]}"
count="${3:-5}"
[ -r "$log" ] || { echo "test-report.sh: cannot read $log" >&2; exit 1; }

# Lines of interest (a test's name is everything between "Test " and the verb):
#   ◇ Test "name" started.
#   ✔ Test "name" passed after 1.234 seconds.        ✔ Test "name" with 3 test cases passed after ...
#   ✘ Test "name" failed after 1.234 seconds with 2 issues.        ➜ Test "name" skipped.
case "$what" in
  running)
    awk '
      /^[^ ]+ Test (case|run) / { next }
      /^[^ ]+ Test .* started\.$/ { name = $0; sub(/^[^ ]+ Test /, "", name); sub(/ started\.$/, "", name); open[name] = 1; next }
      /^[^ ]+ Test .* (passed|failed) after [0-9.]+ seconds/ || /^[^ ]+ Test .* skipped/ {
        name = $0; sub(/^[^ ]+ Test /, "", name)
        sub(/ (with [0-9]+ test cases? )?(passed|failed) after [0-9.]+ seconds.*$/, "", name); sub(/ skipped.*$/, "", name)
        delete open[name]
      }
      END { for (name in open) print "  " name }
    ' "$log"
    ;;
  longest)
    awk '
      /^[^ ]+ Test (case|run) / { next }
      /^[^ ]+ Test .* (passed|failed) after [0-9.]+ seconds/ {
        line = $0; seconds = line
        sub(/^.* after /, "", seconds); sub(/ seconds.*$/, "", seconds)
        name = line; sub(/^[^ ]+ Test /, "", name); sub(/ (with [0-9]+ test cases? )?(passed|failed) after [0-9.]+ seconds.*$/, "", name)
        printf "%10.1f s  %s\n", seconds, name
      }
    ' "$log" | sort -rn | awk -v n="$count" 'NR <= n'  # reads all of sort's output: head would end it with SIGPIPE
    ;;
  *) echo "test-report.sh: '$what': say running or longest" >&2; exit 2 ;;
esac
