"""``python -m funcodec_lite.recipes.vampnet <stage> [options]``: `command.main`."""

import sys

from funcodec_lite.recipes.vampnet.command import main

sys.exit(main())
