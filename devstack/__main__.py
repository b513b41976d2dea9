"""`python -m devstack`, which `make dev` runs."""

import sys

from devstack.local import main

if __name__ == "__main__":
    sys.exit(main())
