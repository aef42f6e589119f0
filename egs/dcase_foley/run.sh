#!/usr/bin/env bash
# DCASE 2023 Task 7 Foley sound synthesis (Kaldi style):
#   mel VQ-VAE / RVQ-VAE -> class-conditional PixelSNAIL -> vocoder (vocoder_kind) -> FAD, or, with a
#   codec_tokens section (conf/tiny_codec*.yaml): codec -> tokens -> class-conditional token model -> codec.
#   ./run.sh [--stage N] [--stop-stage M] [--config conf/tiny_vq.yaml]
#            [--dev-root DIR --eval-root DIR]   real data (default: toy data made by stage 0)
#            [--toy-clips N] [--toy-eval-clips N] [--nj N] [--vggish WEIGHTS]
#            [--hifigan-checkpoint g_XXXXXXXX [--hifigan-config config.json]]
#            [--launch "accelerate launch --multi_gpu --num_processes 4 -m funcodec_lite.recipes.dcase_foley"]
#            [--resume]   training stages (2, 4, 5) continue from their newest checkpoint
#            [--exp DIR]  the run's directory (default exp/<config name>), e.g. the DCASE baseline's released
#                         models converted by `codec convert --from dcase-baseline ... DIR` for stages 6-8
# Stages: 0 data dirs, 1 log-mel features, 2 mel autoencoder, 3 code maps, 4 PixelSNAIL prior,
#         5 vocoder, 6 generate clips per class (and exp/<run>/generator for codec generate),
#         7 FAD + classifier accuracy + noise floors, 8 plots and exp/<run>/report.html.
#   Codec-token path: 2 codec (exp/codec_<hash>, shared by runs with the same codec settings and clips),
#         3 tokens, 4 token prior, 5 nothing, 6-8 as above.
# Outputs under exp/<config name>/; the vocoder under exp/vocoder_<preset>_<hash>/ and the evaluation
# classifier under exp/classifier_<hash>/, each shared by the runs with the same settings and training
# data (the hash covers both; an imported --hifigan-checkpoint goes to exp/vocoder_official_<file hash>/);
# logs in exp/<config name>/log/, stage times in exp/<config name>/log/stage_times.tsv.
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=0
stop_stage=8
config=conf/tiny_vq.yaml
dev_root=
eval_root=
toy_clips=48
toy_eval_clips=24
nj=2
vggish=
hifigan_checkpoint=
hifigan_config=
launch=
resume=
exp=
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage|--stop_stage) stop_stage=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --dev-root) dev_root=$2; shift 2 ;;
    --eval-root) eval_root=$2; shift 2 ;;
    --toy-clips) toy_clips=$2; shift 2 ;;
    --toy-eval-clips) toy_eval_clips=$2; shift 2 ;;
    --nj) nj=$2; shift 2 ;;
    --resume) resume=--resume; shift ;;
    --exp) exp=$2; shift 2 ;;
    --vggish) vggish=$2; shift 2 ;;
    --hifigan-checkpoint) hifigan_checkpoint=$2; shift 2 ;;
    --hifigan-config) hifigan_config=$2; shift 2 ;;
    --launch) launch=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -f "$config" ] || { echo "run.sh: no config $config" >&2; exit 2; }
name=$(basename "$config" .yaml)
exp=${exp:-exp/$name}
mkdir -p "$exp/log"
recipe="python -m funcodec_lite.recipes.dcase_foley"
train=${launch:-$recipe}
common=(--config "$config" --exp "$exp")
vocoder=
path=mel
models=()

keyed_dirs() {  # after stage 1: the vocoder and classifier dirs (keyed by settings and training data), the path
  local dirs
  dirs=$($recipe dirs "${common[@]}" ${hifigan_checkpoint:+--official-checkpoint "$hifigan_checkpoint"} \
    ${hifigan_config:+--official-config "$hifigan_config"})
  { read -r vocoder; read -r classifier; read -r path; } <<< "$dirs"
  models=(--vocoder-exp "$vocoder" --classifier-exp "$classifier")
}

run_stage() {  # run_stage N title command...: runs stage N if selected, logs it and records its time
  local n=$1 title=$2; shift 2
  if [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ]; then
    echo "stage $n: $title"
    local start=$SECONDS
    "$@" 2>&1 | tee "$exp/log/stage$n.log"
    printf '%s\t%s\t%s\n' "$n" "$title" "$((SECONDS - start))" >> "$exp/log/stage_times.tsv"
  fi
}

make_data() {
  if [ -z "$dev_root" ]; then
    python "$FUNCODEC_ROOT/tools/make_toy_foley.py" --out toy --clips-per-class "$toy_clips" \
      --eval-clips-per-class "$toy_eval_clips" --jobs "$nj"
    dev_root=toy/DCASEFoleySoundSynthesisDevSet
    eval_root=toy/DCASEFoleySoundSynthesisEvalSet
  fi
  $recipe data --dev-root "$dev_root" ${eval_root:+--eval-root "$eval_root"}
}

vocoder_stage() {
  if [ -n "$hifigan_checkpoint" ]; then
    $recipe vocoder "${common[@]}" "${models[@]}" --official-checkpoint "$hifigan_checkpoint" \
      ${hifigan_config:+--official-config "$hifigan_config"}
  elif [ -f "$vocoder/model/model.safetensors" ] && [ "$stage" -lt 5 ]; then
    echo "reusing $vocoder (rerun with --stage 5 to retrain it)"
  else
    $train vocoder "${common[@]}" "${models[@]}" $resume
  fi
}

run_stage 0 "data" make_data
run_stage 1 "features" $recipe features
if [ "$stop_stage" -ge 2 ]; then keyed_dirs; fi
if [ "$path" = codec ]; then
  run_stage 2 "train the codec" $train codec "${common[@]}" $resume
  run_stage 3 "tokens" $recipe tokens "${common[@]}"
  run_stage 4 "train the token prior" $train token_prior "${common[@]}" $resume
else
  run_stage 2 "train the mel autoencoder" $train vqvae "${common[@]}" $resume
  run_stage 3 "code maps" $recipe codes "${common[@]}"
  run_stage 4 "train the prior" $train prior "${common[@]}" $resume
  run_stage 5 "vocoder" vocoder_stage
fi
run_stage 6 "generate" $recipe generate "${common[@]}" "${models[@]}"
run_stage 7 "evaluate" $recipe evaluate "${common[@]}" "${models[@]}" ${vggish:+--vggish "$vggish"}
run_stage 8 "plots" $recipe plot "${common[@]}" "${models[@]}"
