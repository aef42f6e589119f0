"""``python -m funcodec_lite.recipes.tts_lm <stage> [options]``: `command.main`."""

import sys

from funcodec_lite.recipes.tts_lm.command import main

sys.exit(main())
