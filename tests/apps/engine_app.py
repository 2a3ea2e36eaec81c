"""A small FDS-shaped app for integration tests: three engine spans per evaluation.

``?slow_cti_ms=N`` makes the CTI engine sleep N ms, so slow buckets get exemplars.
"""

import asyncio

from fastapi import FastAPI

import otel_setup

app = FastAPI()
telemetry = otel_setup.configure("fds", app=app)


@app.post("/v1/fds/evaluate")
async def evaluate(slow_cti_ms: int = 0) -> dict[str, str]:
    async def engine(name: str, ms: float) -> None:
        with telemetry.tracer.start_as_current_span(f"fds.engine.{name}",
                                                    attributes={"fds.engine": name}):
            await asyncio.sleep(ms / 1000)

    await asyncio.gather(engine("rule", 1), engine("ml", 2), engine("cti", slow_cti_ms or 3))
    return {"decision": "approve"}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
