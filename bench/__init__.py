"""Benchmarks: kitcn-temporal side by side with hand-written temporalio, on one dev server."""
