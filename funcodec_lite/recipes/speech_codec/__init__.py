"""The speech codec recipe (``egs/speech_codec/run.sh``): ``python -m funcodec_lite.recipes.speech_codec
<stage>``.

Stage 2 (``tokenize``) is the shared token stage (`funcodec_lite.recipes.tokens`), stage 3 (``evaluate``)
`stages.stage_evaluate`; `command` is the command line. Stages 0 (data) and 1 (``codec train``) are run.sh's.
"""
