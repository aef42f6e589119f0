"""Recipes: the stages of ``egs/<name>/run.sh`` as importable code, above the models they train and use.

Nothing below this package imports it (``tests/test_import_layers.py``); ``egs/<name>/`` keeps the shell
side (run.sh, conf/, path.sh).
"""
