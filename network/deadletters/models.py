"""Rows a background writer could not store: kept with the database's reason for an operator."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from network.clock import now_utc
from network.db import Base, UTCDateTime


class DeadLetter(Base):
    """One row the database refused inside a batch; the rest of its batch was written."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_source", "source", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    #: The writer: clicks, impressions, postbacks, outbox, delivery_log.
    source: Mapped[str] = mapped_column(String(32))
    #: The database error's class and message (never the statement's parameters).
    reason: Mapped[str] = mapped_column(Text)
    #: The refused row as JSON, ASCII only (NUL and lone surrogates escaped), cut to isolate.MAX_PAYLOAD.
    payload: Mapped[str] = mapped_column(Text)
