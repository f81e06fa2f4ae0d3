import sys

from triage_cli import main

sys.exit(main())
