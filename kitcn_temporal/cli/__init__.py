"""The pieces of the ``kitcn-temporal`` command line (entry point: :mod:`kitcn_temporal._cli`)."""
