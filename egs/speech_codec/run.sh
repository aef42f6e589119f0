#!/usr/bin/env bash
# Speech codec recipe (Kaldi style): data → train → tokenize the test set → decode and evaluate.
#   ./run.sh [--stage N] [--stop-stage M] [--config conf/tiny_time.yaml] [--corpus DIR] [--max-steps N]
#            [--set key=value ...] [--init-from DIR] [--num-utts N] [--num-voices N] [--festival] [--nj N]
#            [--launch "accelerate launch --multi_gpu --num_processes 4 -m funcodec_lite.cli"]
# Stage 0: data dirs under data/ (synthetic espeak-ng speech by default; --festival adds Festival's
#          recorded voices; --corpus DIR indexes real audio instead).
# Stage 1: training into exp/<config name>/ (checkpoints, model/, tensorboard/, log/train.log);
#          --init-from DIR (relative to egs/speech_codec) fine-tunes: the run starts from that codec model
#          directory's weights and codebooks with fresh optimizers (`codec train --init-from`; the config's
#          codec section, if any, must agree); a run with checkpoints in exp/<config name>/ resumes instead.
# Stage 2: tokens of the test set in exp/<config name>/tokens/test/.
# Stage 3: PESQ / STOI / mel distance / SI-SNR per n_q in exp/<config name>/results.md.
# Stages 2 and 3 run `python -m funcodec_lite.recipes.speech_codec tokenize` and `... evaluate`.
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=0
stop_stage=3
config=conf/tiny_time.yaml
corpus=
max_steps=
num_utts=2000
num_voices=40
festival=()
nj=2
launch=
init_from=
n_q="1 2 4 8 16 32"
overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage|--stop_stage) stop_stage=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --corpus) corpus=$2; shift 2 ;;
    --max-steps) max_steps=$2; shift 2 ;;
    --num-utts) num_utts=$2; shift 2 ;;
    --num-voices) num_voices=$2; shift 2 ;;
    --festival) festival=(--festival); shift ;;
    --nj) nj=$2; shift 2 ;;
    --launch) launch=$2; shift 2 ;;
    --init-from) init_from=$2; shift 2 ;;
    --n-q) n_q=$2; shift 2 ;;
    --set) overrides+=(--set "$2"); shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
name=$(basename "$config" .yaml)
exp=exp/$name
mkdir -p "$exp/log"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "stage 0: data"
  if [ -n "$corpus" ]; then
    local/data_prep.sh "$corpus" . 2>&1 | tee exp/data_prep.log
  else
    python "$FUNCODEC_ROOT/tools/make_speech_corpus.py" --out . --num-utts "$num_utts" --num-voices "$num_voices" \
      "${festival[@]}" --jobs "$nj" \
      2>&1 | tee exp/make_speech_corpus.log
  fi
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "stage 1: train $config -> $exp"
  steps=()
  [ -n "$max_steps" ] && steps=(--max-steps "$max_steps")
  resume=()
  [ -d "$exp/checkpoints" ] && resume=(--resume)
  init=()
  [ -n "$init_from" ] && init=(--init-from "$init_from")
  ${launch:-python -m funcodec_lite.cli} train --config "$config" --train data/train --valid data/dev \
    --exp-dir "$exp" "${steps[@]}" "${resume[@]}" "${init[@]}" "${overrides[@]}" \
    2>&1 | tee -a "$exp/log/train.log"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "stage 2: tokenize data/test"
  python -m funcodec_lite.recipes.speech_codec tokenize --model "$exp/model" --data data/test \
    --out "$exp/tokens/test" 2>&1 | tee "$exp/log/tokenize.log"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "stage 3: decode and evaluate"
  # shellcheck disable=SC2086
  python -m funcodec_lite.recipes.speech_codec evaluate --model "$exp/model" --data data/test \
    --tokens "$exp/tokens/test" --n-q $n_q --out "$exp/results.md" 2>&1 | tee "$exp/log/evaluate.log"
fi
