#!/bin/sh
# Raises the open-file limit for the thousands of sockets of the run, then starts it.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec node --import tsx "$(dirname "$0")/run.ts" "$@"
