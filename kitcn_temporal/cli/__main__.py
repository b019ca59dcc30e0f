"""``python -m kitcn_temporal.cli``: the ``kitcn-temporal`` command line.

Layer: command line.
"""

from . import main

if __name__ == "__main__":
    main()
