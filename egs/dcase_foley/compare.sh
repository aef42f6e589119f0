#!/usr/bin/env bash
# The Foley configurations side by side (docs/results.md): runs each config (the first from stage 0, the
# others from stage 2, reusing its data and features), then writes exp/comparison.md and exp/comparison.png
# (python -m funcodec_lite.recipes.dcase_foley.compare).
#   ./compare.sh [--configs "tiny_vq tiny_rvq tiny_codec tiny_codec_ar"] [--skip-runs] [run.sh options]
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

configs="tiny_vq tiny_rvq tiny_codec tiny_codec_ar"
skip_runs=
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --configs) configs=$2; shift 2 ;;
    --skip-runs) skip_runs=1; shift ;;
    *) extra+=("$1"); shift ;;
  esac
done
first=1
runs=()
for name in $configs; do
  [ -f "conf/$name.yaml" ] || { echo "compare.sh: no config conf/$name.yaml" >&2; exit 2; }
  if [ -z "$skip_runs" ]; then
    if [ -n "$first" ]; then start=0; else start=2; fi
    bash run.sh --config "conf/$name.yaml" --stage "$start" "${extra[@]}"
  fi
  first=
  runs+=("exp/$name")
done
python -m funcodec_lite.recipes.dcase_foley.compare "${runs[@]}" --out exp
