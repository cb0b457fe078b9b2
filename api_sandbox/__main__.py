"""``python -m api_sandbox serve ...``."""

import sys

from api_sandbox.cli import main

sys.exit(main())
