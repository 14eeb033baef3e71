"""``python -m dce_monai.cli``: the same as the ``dce-monai`` console command."""

import sys

from dce_monai.cli import main

sys.exit(main())
