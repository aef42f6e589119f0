"""``python -m funcodec_lite.cli``: the ``codec`` command."""

import sys

from funcodec_lite.cli import main

sys.exit(main())
