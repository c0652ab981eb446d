import sys

from rsscale.cli import main

sys.exit(main())
