#!/usr/bin/env bash
# VampNet-style masked token modelling on codec tokens (Kaldi style):
#   ./run.sh [--stage N] [--stop-stage M] [--data DIR] [--num-utts N] [--num-voices N] [--codec DIR]
#            [--coarse-config conf/coarse_tiny.yaml] [--c2f-config conf/c2f_tiny.yaml] [--clips N]
#            [--steps N] [--resume] [--nj N]
# Stage 0: data dirs data/{train,dev,test}: the synthetic speech corpus (espeak-ng voices; kal and slt never),
#          or --data DIR, any directory holding Kaldi data dirs train/, dev/ and test/ (wav.scp each).
# Stage 1: codec tokens exp/tokens/<split>/ (codec tokenize; --codec DIR, default the shipped model).
# Stage 2: the coarse model (the first Nc codebooks) -> exp/coarse/model.
# Stage 3: the coarse-to-fine model (the rest, given the coarse ones) -> exp/c2f/model.
# Stage 4: VampNet's demo presets (unconditional, periodic 5/13/17/21, beat-driven, inpainting 1 s,
#          compression) on --clips held-out test clips: exp/presets/<preset>/<utt>.wav, spectrograms and
#          exp/presets/results.md (bitrate kept, mel distance, prompt tokens kept exactly), and the
#          compression table codec alone vs codec + vamp.
#          (`python -m funcodec_lite.recipes.vampnet presets`)
# Logs: exp/log/<step>.log.
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=0
stop_stage=4
data=
num_utts=400
num_voices=12
codec=default
coarse_config=conf/coarse_tiny.yaml
c2f_config=conf/c2f_tiny.yaml
clips=6
steps=24
resume=()
nj=2
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage|--stop_stage) stop_stage=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --num-utts) num_utts=$2; shift 2 ;;
    --num-voices) num_voices=$2; shift 2 ;;
    --codec) codec=$2; shift 2 ;;
    --coarse-config) coarse_config=$2; shift 2 ;;
    --c2f-config) c2f_config=$2; shift 2 ;;
    --clips) clips=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --resume) resume=(--resume); shift ;;
    --nj) nj=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
splits=(train dev test)
mkdir -p exp/log

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "stage 0: data"
  rm -rf exp/tokens  # made from the previous data
  if [ -n "$data" ]; then
    for split in "${splits[@]}"; do
      [ -f "$data/$split/wav.scp" ] || { echo "run.sh: $data/$split/wav.scp not found" >&2; exit 2; }
      mkdir -p "data/$split" && cp "$data/$split/wav.scp" "data/$split/wav.scp"
    done
  else
    python "$FUNCODEC_ROOT/tools/make_speech_corpus.py" --out . --num-utts "$num_utts" \
      --num-voices "$num_voices" --jobs "$nj" 2>&1 | tee exp/log/data.log
  fi
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "stage 1: codec tokens"
  for split in "${splits[@]}"; do
    codec tokenize --scp "data/$split/wav.scp" --out-dir "exp/tokens/$split" --model "$codec" -q
  done 2>&1 | tee exp/log/tokenize.log
fi

trained() {  # the model of a run: best/ (the best held-out NLL, when the config keeps it), else model/
  if [ -f "$1/best/model.safetensors" ]; then echo "$1/best"; else echo "$1/model"; fi
}

train_masked() {  # train_masked NAME CONFIG
  codec lm train --config "$2" --tokens exp/tokens/train --valid-tokens exp/tokens/dev --codec "$codec" \
    --exp-dir "exp/$1" "${resume[@]}" 2>&1 | tee "exp/log/train_$1.log"
}

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "stage 2: the coarse model ($coarse_config)"
  train_masked coarse "$coarse_config"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "stage 3: the coarse-to-fine model ($c2f_config)"
  train_masked c2f "$c2f_config"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "stage 4: prompt presets and compression on held-out clips"
  python -m funcodec_lite.recipes.vampnet presets --coarse "$(trained exp/coarse)" --c2f "$(trained exp/c2f)" \
    --data data/test --clips "$clips" --steps "$steps" --out exp/presets 2>&1 | tee exp/log/presets.log
fi
