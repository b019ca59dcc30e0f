"""The benchmark's app: trivial procedures whose cost is Temporal's, not the handler's."""
