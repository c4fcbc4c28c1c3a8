"""Liveness, readiness and Prometheus metrics, for load balancers and scrapers: the probes answer anyone, the
metrics only the metrics token's bearer (anyone on a loopback-only server without one)."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapters.api.deps import StateDep
from adapters.api.errors import ApiError, documented
from adapters.api.schemas import Health
from core.metrics import scrape_registry
from core.store.pool import ping

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
        await asyncio.wait_for(ping(state.pool), READY_TIMEOUT_S)
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
    responses={
        200: {"description": "Prometheus text format", "content": {CONTENT_TYPE_LATEST: {}}},
        **documented(401, 403),
    },
    summary="Prometheus metrics",
)
async def metrics(request: Request, state: StateDep) -> Response:
    """The counters (every worker's, added up), to a request with the metrics token (`PARLEY_METRICS_TOKEN`), or
    to anyone where the server listens on a loopback address and no token is set."""
    expected = state.config.metrics_token
    if expected is None and not state.config.metrics_keyless:
        raise ApiError(
            403,
            "metrics_need_a_token",
            "This server listens beyond this machine and no metrics token is set, so /metrics answers no one.",
            "Set PARLEY_METRICS_TOKEN and have Prometheus send it as a bearer token (docs/operators.md).",
        )
    if expected is not None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected.encode()):
            raise ApiError(
                401,
                "unauthorized",
                "/metrics needs the metrics token and the request carried none, or another.",
                "Send `Authorization: Bearer <PARLEY_METRICS_TOKEN>` (Prometheus: `authorization: {credentials: ..}`).",
                headers={"WWW-Authenticate": "Bearer"},
            )
    return Response(generate_latest(scrape_registry()), media_type=CONTENT_TYPE_LATEST)
