"""`python -m bench`: every benchmark in one go (the same as `python -m bench.run`; `--quick` for a smoke run)."""

import sys

from bench.run import main

sys.exit(main())
