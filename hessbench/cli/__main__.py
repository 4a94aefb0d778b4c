"""``python -m hessbench.cli``: the ``hessbench`` console script."""
import sys

from hessbench.cli import main

sys.exit(main())
