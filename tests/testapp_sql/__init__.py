"""A test app whose procedures keep their data in SQL through ``ctx.db`` (kitcn_temporal.sql)."""
