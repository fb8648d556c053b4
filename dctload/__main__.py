import sys

from dctload.cli import main

sys.exit(main())
