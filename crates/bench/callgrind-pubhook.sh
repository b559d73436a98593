#!/bin/bash
# Runs a pubhook binary under callgrind in place of pubhook itself, for counting the delivery
# path's instructions when wall-clock runs are too noisy (docs/performance.md, issue 11 item 7):
#
#   CG_BIN=target/release/pubhook CG_OUT=target/cg/new \
#     target/release/pubhook-bench --pubhook crates/bench/callgrind-pubhook.sh \
#     --quick --scenarios fan-out --modes standalone --runs 1 --out target/cg/new-bench
#   for pid in $(cat target/cg/new.pids); do callgrind_control -d "$pid"; kill "$pid"; done
#   callgrind_annotate --inclusive=yes target/cg/new.<pid>.1
#
# The bench kills its pubhook with SIGKILL, which would lose the profile, so valgrind runs in
# the background of this script and outlives it: dump each profile by hand, then stop it.
set -eu
mkdir -p "$(dirname "$CG_OUT")"
valgrind --tool=callgrind --callgrind-out-file="$CG_OUT.%p" "$CG_BIN" "$@" 2>>"$CG_OUT.vglog" &
echo $! >>"$CG_OUT.pids"
wait
