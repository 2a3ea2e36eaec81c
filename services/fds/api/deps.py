"""Dependencies of the FDS routes that read evaluations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession


async def _flushed_session(request: Request) -> AsyncIterator[AsyncSession]:
    # Evaluations are written behind (writer.py): what was answered is in the table before a read.
    await request.app.state.writer.flush()
    async with request.app.state.db.sessions() as session:
        yield session


FlushedSessionDep = Annotated[AsyncSession, Depends(_flushed_session)]
