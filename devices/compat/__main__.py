import sys

from devices.compat.cli import main

sys.exit(main())
