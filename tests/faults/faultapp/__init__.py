"""The fault suite's app: mutations that write through ``ctx.db`` and actions that keep a ledger.

Everything a fault test checks afterwards lives outside the worker's memory, so that it
survives the worker being killed: mutation effects are rows keyed by job id in the app's
SQLite database, and each action run appends lines to a ledger file.
"""
