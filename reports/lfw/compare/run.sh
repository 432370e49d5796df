#!/usr/bin/env bash
# Reproduce reports/lfw/compare (issue 18): every method on the same held-out LFW pairs of the
# bundled default model (folds 9-10, people it never saw). Resumable: every explained pair is
# cached under $CACHE, so the script can be stopped and started again at any time.
#
#   reports/lfw/compare/run.sh                  # 100 true positives + 100 true negatives each
#   LIMIT_EXPENSIVE=25 RISE_LIMIT=8 reports/lfw/compare/run.sh   # a quicker, smaller run
#
# The expensive methods run in phases of growing limits (a smaller limit is always the start of
# a larger one), each phase in two one-core shards, so that a run stopped early still leaves
# complete prefixes of the draw; a final two-core run gathers the cache and writes the report.
set -euo pipefail
cd "$(dirname "$0")/../../.."
XFR=${XFR:-.venv/bin/xfr}
LFW=${XFR_LFW:-../shared/data/lfw}
CACHE=${CACHE:-cache/eval-lfw-v2}
LIMIT_EXPENSIVE=${LIMIT_EXPENSIVE:-100}
RISE_LIMIT=${RISE_LIMIT:-100}
RISE_MASKS=${RISE_MASKS:-1000}
METHODS=relevance,paper,attention,random-shared,center-blob,xssab,bilrp,minplus,avg,corrrise,lime,rise
base=(--pairs "$LFW/pairs.txt" --root "$LFW" --folds 9,10 --limit 300 --methods "$METHODS"
      --baseline-limit 100 --option "rise.n_masks=$RISE_MASKS" --cache "$CACHE"
      --align-cache cache/aligned --batch-size 8 --out reports/lfw/compare)
limits() {  # $1: limit of MinPlus, AVG, CorrRISE, LIME; $2: BiLRP; $3: RISE
  echo --method-limit "minplus=$1" --method-limit "avg=$1" --method-limit "corrrise=$1" \
       --method-limit "lime=$1" --method-limit "bilrp=$2" --method-limit "rise=$3"
}
phase() {  # run both shards of one set of limits
  echo "$(date -Is) phase $*" >&2
  for i in 1 2; do
    # shellcheck disable=SC2046
    OMP_NUM_THREADS=1 nice -n 10 "$XFR" evaluate "${base[@]}" $(limits "$@") --shard "$i/2" \
      --no-progress >> "$CACHE/compare-shard$i.log" 2>&1 &
    pids[$i]=$!
  done
  for i in 1 2; do wait "${pids[$i]}" || { echo "shard $i failed: $CACHE/compare-shard$i.log" >&2; exit 1; }; done
}
mkdir -p "$CACHE"
step() { local n=$1 cap=$2; (( n < cap )) && echo "$n" || echo "$cap"; }
for n in 25 50 75 100; do
  e=$(step "$n" "$LIMIT_EXPENSIVE"); phase "$e" 15 8
done
for n in 15 50 75 100; do
  phase "$LIMIT_EXPENSIVE" "$(step "$n" "$LIMIT_EXPENSIVE")" 8
done
for n in 8 25 50 75 100; do
  phase "$LIMIT_EXPENSIVE" "$LIMIT_EXPENSIVE" "$(step "$n" "$RISE_LIMIT")"
done
# shellcheck disable=SC2046
OMP_NUM_THREADS=2 "$XFR" evaluate "${base[@]}" $(limits "$LIMIT_EXPENSIVE" "$LIMIT_EXPENSIVE" \
  "$RISE_LIMIT") --no-progress
.venv/bin/python reports/lfw/compare/figure.py
