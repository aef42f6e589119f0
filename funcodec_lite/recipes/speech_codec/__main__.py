"""``python -m funcodec_lite.recipes.speech_codec <stage> [options]``: `command.main`."""

import sys

from funcodec_lite.recipes.speech_codec.command import main

sys.exit(main())
