"""The Cloudflare side panel of the browser console: what the simulator holds, read through
its ``/__sim`` control endpoints, and the one control a person needs to watch a health gate
fail (make a version bad, or good again)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

BAD_ERROR_RATE = 0.25
MODES: dict[str, dict[str, Any]] = {
    "good": {"error_rate": 0.0, "healthy": True},
    "errors": {"error_rate": BAD_ERROR_RATE, "healthy": True},
    "bad": {"error_rate": BAD_ERROR_RATE, "healthy": False},
}


class SimulatorView:
    """Reads and steers the Cloudflare simulator at ``sim_url`` over HTTP."""

    def __init__(
        self,
        sim_url: str,
        targets: dict[str, tuple[str, str]],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``targets`` maps a Worker script name to its ``(service, environment)``."""
        self.http = httpx.AsyncClient(base_url=sim_url.rstrip("/"), timeout=5, transport=transport)
        self.targets = targets

    async def aclose(self) -> None:
        await self.http.aclose()

    async def overview(self) -> dict[str, Any]:
        """Every Worker: its live split and its versions (newest first) with their error rate,
        health and share of traffic."""
        state = (await self.http.get("/__sim/state")).raise_for_status().json()
        scripts = state.get("scripts", [])
        listings = await asyncio.gather(
            *(self.http.get(f"/__sim/scripts/{s['name']}/versions") for s in scripts)
        )
        order = {name: i for i, name in enumerate(self.targets)}
        workers = []
        for script, listing in zip(scripts, listings, strict=True):
            listing.raise_for_status()
            workers.append(self._worker(script, listing.json().get("versions", [])))
        workers.sort(key=lambda w: (order.get(w["script"], len(order)), w["script"]))
        return {"workers": workers}

    def _worker(self, script: dict[str, Any], versions: list[dict[str, Any]]) -> dict[str, Any]:
        active = script.get("active") or {}
        shares = {v["version_id"]: float(v["percentage"]) for v in active.get("versions", [])}
        rows = []
        for v in versions:
            tag = (v.get("annotations") or {}).get("workers/tag")
            rows.append(
                {
                    "id": v["id"],
                    "short": v["id"][:8],
                    "tag": tag,
                    "number": v.get("number"),
                    "error_rate": float(v.get("error_rate", 0.0)),
                    "healthy": bool(v.get("healthy", True)),
                    "percentage": shares.get(v["id"], 0.0),
                }
            )
        by_id = {r["id"]: r for r in rows}
        split = [
            {
                "id": vid,
                "short": vid[:8],
                "tag": by_id.get(vid, {}).get("tag"),
                "percentage": pct,
            }
            for vid, pct in shares.items()
        ]
        service, env = self.targets.get(script["name"], ("", ""))
        return {
            "script": script["name"],
            "service": service,
            "environment": env,
            "split": split,
            "versions": rows,
            "deployed_at": active.get("created_on"),
        }

    async def set_mode(self, script: str, version_id: str, mode: str) -> dict[str, Any]:
        """Sets how a version behaves: ``good`` serves cleanly; ``errors`` fails
        ``BAD_ERROR_RATE`` of its requests but passes its health check (a gate catches it under
        traffic); ``bad`` also fails its health check."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        response = await self.http.post(
            f"/__sim/scripts/{script}/versions/{version_id}", json=MODES[mode]
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def upload(
        self, script: str, tag: str, message: str, mode: str, author: str
    ) -> dict[str, Any]:
        """A new version of ``script`` uploaded as wrangler would (not deployed), then made to
        behave as ``mode`` says; the simulator's refusal (a tag too long) raises ValueError."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        body = {"tag": tag or None, "message": message or None, "author_email": author}
        response = await self.http.post(f"/__sim/scripts/{script}/versions", json=body)
        if response.status_code >= 400:
            raise ValueError(response.text)
        version_id = str(response.json()["id"])
        if mode != "good":
            await self.set_mode(script, version_id, mode)
        return {"id": version_id, "script": script, "tag": tag, "mode": mode}
