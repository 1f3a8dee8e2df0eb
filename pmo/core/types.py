"""Annotated column aliases shared by every domain's models."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from sqlalchemy import DateTime, String, func
from sqlalchemy.orm import mapped_column

intpk = Annotated[int, mapped_column(primary_key=True)]
created_dt = Annotated[
    dt.datetime, mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
]
body_code = Annotated[str, mapped_column(String(6))]
