"""``python -m kitcn_temporal``: the ``kitcn-temporal`` command line."""

from .cli import main

if __name__ == "__main__":
    main()
