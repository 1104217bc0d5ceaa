"""GET / and /playground: the playground page, built into the package (no build step, no
network: its script and style come from this server)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

PAGE_DIR = Path(__file__).resolve().parent.parent / "playground"


def install(app: FastAPI) -> None:
    """Serve the page (it calls the public API like any client), its script and style."""
    page = (PAGE_DIR / "index.html").read_text(encoding="utf-8")
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    @router.get("/playground", include_in_schema=False)
    async def playground() -> HTMLResponse:
        return HTMLResponse(page)

    app.include_router(router)
    app.mount("/playground/static", StaticFiles(directory=PAGE_DIR), name="playground-static")
