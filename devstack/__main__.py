"""`python -m devstack`, which `make dev` runs."""

import sys

try:
    from devstack.local import main
except KeyboardInterrupt:  # Ctrl-C while still importing: nothing has started yet
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(main())
