#!/usr/bin/env bash
# Creates (or updates) the virtual environment at .venv in the repository root and installs
# funcodec_lite into it in editable mode.  `--test` also installs the test extras (pytest, ruff and the
# reference implementations the tests compare against: encodec, vector-quantize-pytorch, transformers, snac,
# and DAC / Mimi / FunCodec from tools/reference-libs.txt), Debian's chromium + chromium-driver and the
# Debian packages espeak-ng, festival and festvox-kdlpc16k (speech synthesis for the corpus tests).
# `--bench` also installs the classical speech codecs (Debian codec2, opus-tools, speex, ffmpeg) that
# tools/bench/bench_classical.py compares our models with; `--test` installs the three codecs its tests
# run (not ffmpeg, which only the real-recording set's G.722 prompts need).
#
# No torchaudio: it has no release for the torch this project runs on (2.13 CPU); what the project took
# from it (resampling, mel filter banks, MFCCs, a biquad) is computed in torch, funcodec_lite/audio/.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
want_bench=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    --bench) want_bench=1 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
log() { echo "[setup] $*" >&2; }
quiet_pip() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2>&1 | grep -v "^WARNING: Location" || true; }

[ -x .venv/bin/python ] || { log "creating .venv"; python3 -m venv .venv; }
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  log "installing torch"
  quiet_pip "torch==2.13.0" || true
  .venv/bin/python -c "import torch" 2>/dev/null || quiet_pip torch
fi
if [ "$want_test" = 1 ]; then
  # The speech-corpus tests synthesise speech with espeak-ng and festival (Debian packages; they skip
  # without them). Festival gets only its one small voice, and no recommends: festival recommends
  # festvox-kallpc16k, whose speaker (kal) is held out of our corpora.
  if ! command -v espeak-ng >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    log "installing espeak-ng"
    { apt-get install -y -q espeak-ng >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q espeak-ng >/dev/null 2>&1; }; } \
      || log "could not install espeak-ng: speech-corpus tests will be skipped"
  fi
  if ! dpkg -s festival festvox-kdlpc16k >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    log "installing festival festvox-kdlpc16k"
    fest() { apt-get install -y -q --no-install-recommends festival festvox-kdlpc16k >/dev/null 2>&1; }
    { fest || { apt-get update -q >/dev/null 2>&1 && fest; }; } \
      || log "could not install festival: its speech-corpus tests will be skipped"
  fi
  quiet_pip -e ".[test]"
  # reference codecs (DAC, Mimi, FunCodec) without their pinned dependencies: see tools/reference-libs.txt
  quiet_pip --no-deps -r tools/reference-libs.txt
  # a real browser for the page tests (selenium drives Debian's chromium; nothing is downloaded at run time)
  if ! dpkg -s chromium chromium-driver >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    log "installing chromium chromium-driver"
    browser_get() { apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1; }
    { browser_get || { apt-get update -q >/dev/null 2>&1 && browser_get; }; } \
      || log "could not install chromium: the browser tests will skip"
  fi
else
  quiet_pip -e .
fi
.venv/bin/python -c "import funcodec_lite" || { log "funcodec_lite failed to import"; exit 1; }
# --- optional: --bench -------------------------------------------------------------------------------
# The classical speech codecs of tools/bench/bench_classical.py (Debian's codec2, opus-tools, speex; ffmpeg
# decodes the G.722 prompts of tools/make_real_speech_set.py). Their tests skip without them.
if { [ "$want_bench" = 1 ] || [ "$want_test" = 1 ]; } && command -v apt-get >/dev/null 2>&1; then
  bench_pkgs="codec2 opus-tools speex"
  [ "$want_bench" = 1 ] && bench_pkgs="$bench_pkgs ffmpeg"
  if ! dpkg -s $bench_pkgs >/dev/null 2>&1; then
    log "installing $bench_pkgs"
    bench_get() { apt-get install -y -q --no-install-recommends $bench_pkgs >/dev/null 2>&1; }
    { bench_get || { apt-get update -q >/dev/null 2>&1 && bench_get; }; } \
      || log "could not install $bench_pkgs: the classical-codec benchmark and its tests will skip"
  fi
fi
# --- end of --bench ------------------------------------------------------------------------------------
log "ready: .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
