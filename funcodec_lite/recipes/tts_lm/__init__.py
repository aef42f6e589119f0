"""The VALL-E-style TTS recipe (``egs/tts_lm/run.sh``): ``python -m funcodec_lite.recipes.tts_lm <stage>``.

Stage 1 ``phonemize``, stage 2 ``tokenize`` (the shared token stage, `funcodec_lite.recipes.tokens`) and
``pack`` (the task examples), stage 5 ``synthesize`` in `stages`; stage 6 ``evaluate`` in `evaluation`;
`command` is the command line. Stages 0 (data) and 3-4 (``codec lm train``) are run.sh's.
"""
