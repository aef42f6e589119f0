"""The VampNet recipe (``egs/vampnet/run.sh``): ``python -m funcodec_lite.recipes.vampnet <stage>``.

Stage 4 ``presets`` (VampNet's demo presets and token-domain compression on held-out clips) in `presets`;
`command` is the command line. Stages 0 (data), 1 (``codec tokenize``) and 2-3 (``codec lm train``) are
run.sh's.
"""
