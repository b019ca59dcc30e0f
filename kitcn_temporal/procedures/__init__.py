"""Procedures: what a query, mutation or action is, before anything runs it.

* ``_procedures``: the builders (``public_mutation.input(M).action``...) and ``Procedure``;
* ``_names``: the checks of procedure names, job ids and keys;
* ``_codec``: input validation, output encoding and the one size check of a job's arguments.

Contexts and callers, which a procedure's handler uses, run it: they live in ``execution``.

Layer: procedures: below the app; imports only ``_errors`` and ``_wire``.
"""

from ._codec import decode_output, encode_job_args, validate_input
from ._names import check_job_id, check_key, check_procedure_name
from ._procedures import (
    CRPC,
    Middleware,
    Procedure,
    ProcedureBuilder,
    init_crpc,
    private_action,
    private_mutation,
    private_query,
    public_action,
    public_mutation,
    public_query,
)

__all__ = [
    "CRPC",
    "Middleware",
    "Procedure",
    "ProcedureBuilder",
    "check_job_id",
    "check_key",
    "check_procedure_name",
    "decode_output",
    "encode_job_args",
    "init_crpc",
    "private_action",
    "private_mutation",
    "private_query",
    "public_action",
    "public_mutation",
    "public_query",
    "validate_input",
]
