"""``python -m funcodec_lite.recipes.dcase_foley <stage> [options]``: `command.main`."""

import sys

from funcodec_lite.recipes.dcase_foley.command import main

sys.exit(main())
