"""``python -m bench.chaos``: a Jepsen-style run of mixed jobs under worker kills, server restarts,
network cuts and database kills, checked job by job against the ledgers (SPEC §18).

Modules: ``_proxy`` (the TCP proxy the run cuts), ``_procs`` (server and worker processes),
``_load`` (the producer), ``_faults`` (the nemesis), ``_check`` (the rules), ``_run`` (the
run from start to report); ``__main__`` parses the command line.
"""
