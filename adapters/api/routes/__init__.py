"""One router per resource; `all_routers()` is what the app mounts."""

from __future__ import annotations

from fastapi import APIRouter

from adapters.api.routes import admin, capabilities, chat, feedback, health, memory, sessions


def all_routers() -> list[APIRouter]:
    return [health.router, chat.router, sessions.router, feedback.router, capabilities.router, memory.router,
            admin.router]
