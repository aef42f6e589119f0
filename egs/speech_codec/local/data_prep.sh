#!/usr/bin/env bash
# Turns an existing speech corpus folder (LibriTTS, VCTK, or any tree of wav/flac with one folder per
# speaker) into Kaldi data dirs OUT/data/{train,dev,test}, split by speaker.
#
# Usage: local/data_prep.sh [--seed N] [--dev-speakers N] [--test-speakers N] CORPUS_DIR OUT_DIR
# Example (from egs/speech_codec): local/data_prep.sh /data/LibriTTS/train-clean-100 .
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
python=python3
[ -x "$root/.venv/bin/python" ] && python="$root/.venv/bin/python"

options=()
while [ $# -gt 2 ]; do
  case "$1" in
    --seed|--dev-speakers|--test-speakers) options+=("$1" "$2"); shift 2 ;;
    *) echo "data_prep.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ $# -ne 2 ]; then
  echo "usage: $0 [--seed N] [--dev-speakers N] [--test-speakers N] CORPUS_DIR OUT_DIR" >&2
  exit 2
fi
exec "$python" "$root/tools/make_speech_corpus.py" --from-corpus "$1" --out "$2" ${options[@]+"${options[@]}"}
