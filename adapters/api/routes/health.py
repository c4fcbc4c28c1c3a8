"""Liveness, readiness and Prometheus metrics: unauthenticated, for load balancers and scrapers."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from adapters.api.deps import StateDep
from adapters.api.errors import ApiError, documented
from adapters.api.schemas import Health

router = APIRouter(tags=["health"])
READY_TIMEOUT_S = 2.0


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses=documented(503), summary="Ready to take turns")
async def readyz(state: StateDep) -> Health:
    if state.draining:
        raise ApiError(503, "shutting_down", "This instance is shutting down.", "Send traffic to another instance.")
    try:
        await asyncio.wait_for(state.pool.fetchval("SELECT 1"), READY_TIMEOUT_S)
    except Exception as exc:
        raise ApiError(
            503,
            "database_unreachable",
            f"The database does not answer ({type(exc).__name__}).",
            "Check DATABASE_URL and that Postgres is running; this instance becomes ready once it answers.",
        ) from exc
    return Health(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text format", "content": {CONTENT_TYPE_LATEST: {}}}},
    summary="Prometheus metrics",
)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
