"""The tracker's words for the store's codes: an NSI type, an owner role, a status or a direction
as a manager reads it, the same on every sheet that shows one."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

NSI_TYPES = {"case_transfer": "Case Transfer", "temporary_move": "Temporary Move"}
OWNERS = {
    "transferring_pp": "Transferring practitioner",
    "transferring_spo": "Transferring SPO",
    "receiving_spo": "Receiving SPO",
    "receiving_pp": "Receiving practitioner",
    "admin": "Case admin",
    "receiving_head": "Head of the receiving PDU",
    "service_manager": "Service Manager (youth justice)",
}
# Statuses whose plain words are not just the code with spaces (see plain_words).
STATUS_WORDS = {"lao": "Limited access", "tm_supporting": "Supporting (temporary move)"}
DIRECTION_WORDS = {"out": "Outgoing", "in": "Incoming", "within": "Within the region"}


def plain_words(values: Any, words: Mapping[str, str] = STATUS_WORDS) -> list[Any]:
    """Codes as a manager reads them: 'awaiting_address_assessment' -> 'Awaiting address assessment'.

    Worked out once per distinct code, not per cell (a region has tens of thousands of rows)."""
    arr = np.asarray(values, dtype=object)
    out = {}
    for code in pd.unique(arr):
        if code is None or (isinstance(code, float) and math.isnan(code)):
            out[code] = None
        else:
            text = str(code)
            out[code] = words.get(text) or text.replace("_", " ").strip().capitalize()
    return [out[v] for v in arr]
