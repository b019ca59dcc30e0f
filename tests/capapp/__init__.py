"""An app whose fleet-wide cap a deploy changes: ``KITCN_TEST_CAP`` (read at import) sets it."""
