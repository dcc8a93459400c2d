import sys

from otelml.cli import main

sys.exit(main())
