"""``python -m sklearn_llmconf.cli``."""

import sys

from . import main

sys.exit(main())
