"""The DCASE 2023 Task 7 Foley recipe (``egs/dcase_foley/run.sh``):
``python -m funcodec_lite.recipes.dcase_foley <stage>``.

`run` (the typed run object every stage takes) and `config` (its YAML, parsed once; `codec_tokens` for the
codec-token path); stages 0-5 in `stages` (the codec-token path's 2-4 in `codec_path`), 6 `generation`,
7 `evaluation`, 8 `report`; `command` is the command line; `compare` puts runs side by side.
"""
