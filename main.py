#!/usr/bin/env python
"""spinnconv command line: ``python main.py --mode all`` (see README.md and --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # spinnconv/ of this checkout

from spinnconv.cli import main

if __name__ == "__main__":
    sys.exit(main())
