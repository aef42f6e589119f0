#!/usr/bin/env bash
# VALL-E-style TTS on codec tokens (Kaldi style): data -> phonemes -> codec tokens and task examples -> ...
#   ./run.sh [--stage N] [--stop-stage M] [--num-utts N] [--num-voices N] [--festival] [--corpus DIR]
#            [--language VOICE] [--codec DIR] [--n-q N] [--prompt-seconds S] [--seed N] [--nj N]
#            [--ar-config conf/ar_tiny.yaml] [--nar-config conf/nar_tiny.yaml] [--resume]
# Stage 0: data dirs data/{train,dev,test} (synthetic espeak-ng speech; --festival adds Festival's recorded
#          voices, which needs at least three festival speakers installed, see docs/data.md; --corpus DIR
#          indexes real audio with transcripts instead). Clears exp/tokens and exp/examples, which were made
#          from the previous data.
# Stage 1: phonemes: data/<split>/phonemes ('utt-id ph ph ...', espeak-ng IPA in each voice's language, else
#          --language) and the vocabulary of the training split, exp/vocab.json.
# Stage 2: codec tokens exp/tokens/<split>/<utt>.npz (--codec DIR, default: the shipped model; files of
#          this model are kept on a rerun) and the TTS examples exp/examples/<split>.npz with their
#          prompt pairs exp/examples/<split>.utt2prompt (prompt: the first --prompt-seconds of another
#          utterance of the same speaker, chosen with --seed) and the id layout exp/examples/layout.json.
# Stage 3: train the AR model (codebook 0 after phonemes and prompt, conf/ar_tiny.yaml) -> exp/ar/model.
# Stage 4: train the NAR model (codebooks 1..K-1, conf/nar_tiny.yaml) -> exp/nar/model.
# Stage 5: synthesize the test sentences in their held-out voices -> exp/synth/<utt>.wav.
# Stage 6: evaluate (token NLL vs a unigram baseline, durations, MCD after DTW per voice, spectrograms)
#          -> exp/eval/results.md.
# Stages 1, 2, 5 and 6 run `python -m funcodec_lite.recipes.tts_lm STAGE` (phonemize; tokenize and pack;
# synthesize; evaluate).
# Logs: exp/log/<step>.log.
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=0
stop_stage=6
ar_config=conf/ar_tiny.yaml
nar_config=conf/nar_tiny.yaml
num_utts=400
num_voices=12
festival=()
corpus=
language=en-us
codec=default
n_q=
prompt_seconds=3
seed=0
nj=2
resume=()
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage|--stop_stage) stop_stage=$2; shift 2 ;;
    --num-utts) num_utts=$2; shift 2 ;;
    --num-voices) num_voices=$2; shift 2 ;;
    --festival) festival=(--festival); shift ;;
    --corpus) corpus=$2; shift 2 ;;
    --language) language=$2; shift 2 ;;
    --codec) codec=$2; shift 2 ;;
    --n-q) n_q=$2; shift 2 ;;
    --prompt-seconds) prompt_seconds=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --nj) nj=$2; shift 2 ;;
    --ar-config) ar_config=$2; shift 2 ;;
    --nar-config) nar_config=$2; shift 2 ;;
    --resume) resume=(--resume); shift ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
splits=(data/train data/dev data/test)
mkdir -p exp/log

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "stage 0: data"
  if [ -d exp/tokens ] || [ -d exp/examples ]; then
    echo "stage 0: removing exp/tokens and exp/examples (made from the previous data)"
    rm -rf exp/tokens exp/examples
  fi
  if [ -n "$corpus" ]; then
    python "$FUNCODEC_ROOT/tools/make_speech_corpus.py" --out . --from-corpus "$corpus" --seed "$seed" \
      2>&1 | tee exp/log/data.log
  else
    python "$FUNCODEC_ROOT/tools/make_speech_corpus.py" --out . --num-utts "$num_utts" \
      --num-voices "$num_voices" "${festival[@]}" --seed "$seed" --jobs "$nj" 2>&1 | tee exp/log/data.log
  fi
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "stage 1: phonemes"
  python -m funcodec_lite.recipes.tts_lm phonemize --data "${splits[@]}" --vocab exp/vocab.json \
    --language "$language" 2>&1 | tee exp/log/phonemize.log
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "stage 2: codec tokens and task examples"
  nq=()
  [ -n "$n_q" ] && nq=(--n-q "$n_q")
  python -m funcodec_lite.recipes.tts_lm tokenize --codec "$codec" --data "${splits[@]}" --out exp/tokens \
    "${nq[@]}" 2>&1 | tee exp/log/tokenize.log
  python -m funcodec_lite.recipes.tts_lm pack --data "${splits[@]}" --tokens exp/tokens \
    --vocab exp/vocab.json --out exp/examples --seed "$seed" --prompt-seconds "$prompt_seconds" \
    2>&1 | tee exp/log/pack.log
fi

trained() {  # the model of a run: best/ (the best held-out NLL, when the config keeps it), else model/
  if [ -f "$1/best/model.safetensors" ]; then echo "$1/best"; else echo "$1/model"; fi
}

train_lm() {  # train_lm NAME CONFIG: one token model on the training examples, held-out NLL on dev
  codec lm train --config "$2" --examples exp/examples/train.npz --valid-examples exp/examples/dev.npz \
    --vocab exp/vocab.json --language "$language" --codec "$codec" --exp-dir "exp/$1" "${resume[@]}" \
    2>&1 | tee "exp/log/train_$1.log"
}

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "stage 3: train the AR model ($ar_config)"
  train_lm ar "$ar_config"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "stage 4: train the NAR model ($nar_config)"
  train_lm nar "$nar_config"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  echo "stage 5: synthesize the test sentences"
  python -m funcodec_lite.recipes.tts_lm synthesize --ar "$(trained exp/ar)" --nar "$(trained exp/nar)" \
    --examples exp/examples/test.npz --codec "$codec" --out exp/synth --seed "$seed" \
    2>&1 | tee exp/log/synthesize.log
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  echo "stage 6: evaluate"
  python -m funcodec_lite.recipes.tts_lm evaluate --ar "$(trained exp/ar)" --nar "$(trained exp/nar)" \
    --train-examples exp/examples/train.npz --test-examples exp/examples/test.npz --test-data data/test \
    --synth exp/synth --out exp/eval \
    2>&1 | tee exp/log/evaluate.log
fi
