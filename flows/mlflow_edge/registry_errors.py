"""Which MLflow registry errors mean "it does not exist".

Only two answers say that a model, version or alias is absent: RESOURCE_DOES_NOT_EXIST (no such
registered model or version) and the INVALID_PARAMETER_VALUE that the SQL store (and a tracking
server that relays it) gives for an alias no version holds, "Registered model alias A not found.".
Anything else (a 5xx from a tracking server or the proxy in front of it, 401/403, a timeout, a
locked database) says nothing about the registry's contents: callers raise it instead of treating
the model as missing. No heavy imports: the CLI's preflight uses this before mlflow is loaded.
"""

from __future__ import annotations

import re
from typing import Any

_ALIAS_NOT_FOUND = re.compile(r"\bRegistered model alias \S+ not found\b")


def is_not_found(error: Any) -> bool:
    """True when `error` (an MlflowException) is the registry saying that the model, version or
    alias does not exist."""
    code = getattr(error, "error_code", None)
    if code == "RESOURCE_DOES_NOT_EXIST":
        return True
    return code == "INVALID_PARAMETER_VALUE" and bool(_ALIAS_NOT_FOUND.search(str(getattr(error, "message", error))))
