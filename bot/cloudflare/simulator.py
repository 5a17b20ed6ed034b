"""A local stand-in for the Cloudflare API, faithful to the parts the bot uses.

``create_simulator`` builds a Starlette app serving, under ``/client/v4`` (so the bot's
``CLOUDFLARE_API_BASE_URL`` is ``http://HOST:PORT/client/v4``): Workers versions and
deployments, D1 Time Travel, token verification and GraphQL analytics; plus ``/__sim/...``
to steer it and ``/__workers/{script}/...`` as the Workers themselves. Every API request
passes, in order: fault injection, authentication, the operation, and (when asked) a check
of request and response against the OpenAPI contract.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.cloudflare import sim_api
from bot.cloudflare.contract import ADDITIONS, SUBSET, Contract, Operation, load
from bot.cloudflare.sim_api import Call, failure
from bot.cloudflare.sim_control import control_routes, fault_response, worker_route
from bot.cloudflare.sim_graphql import graphql
from bot.cloudflare.sim_model import ApiError
from bot.cloudflare.sim_state import SimulatorState

PREFIX = "/client/v4"
log = logging.getLogger("releasebot.cloudflare.simulator")


class _Api:
    """The ``/client/v4/...`` endpoint: one dispatcher for every operation."""

    def __init__(
        self, state: SimulatorState, api_token: str | None, contract: Contract | None
    ) -> None:
        self.state = state
        self.api_token = api_token
        self.contract = contract
        self.table = sim_api.routes(graphql)

    async def handle(self, request: Request) -> Response:
        method = request.method
        path = request.url.path.removeprefix(PREFIX) or "/"
        body = await request.body()
        problems: list[str] = []
        op: Operation | None = None
        if self.contract is not None:
            found = self.contract.find(method, path)
            if found is None:
                problems.append(f"{method} {path}: no such operation in the contract")
            else:
                op, path_params = found
                problems += self.contract.check_request(
                    op, path_params, request.query_params.multi_items(), request.headers, body
                )

        fault = self.state.take_fault(method, request.url.path)
        if fault is not None and fault.delay and not fault.apply_first:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status is not None and not fault.apply_first:
            # an injected failure stands for trouble in front of the API; its answer is not
            # the API's, so only the request is held to the contract
            return self._finish(request, fault_response(fault), problems, fault=True)

        status, payload = self._operate(request, method, path, body)
        if fault is not None and fault.apply_first:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return self._finish(request, fault_response(fault), problems, fault=True)
        if self.contract is not None and op is not None:
            problems += self.contract.check_response(op, status, payload)
        return self._finish(request, JSONResponse(payload, status_code=status), problems)

    def _operate(self, request: Request, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if self.api_token is not None:
            given = request.headers.get("authorization", "")
            if given != f"Bearer {self.api_token}":
                return 401, failure(10000, "Authentication error")
        matched = sim_api.match(self.table, method, path)
        if matched is None:
            return 404, failure(7003, "No route for the URI")
        route, params = matched
        call = Call(self.state, params, request.query_params, body, request.headers)
        try:
            with self.state.lock:
                return route.handler(call)
        except ApiError as exc:
            return exc.status, failure(exc.code, exc.message)

    def _finish(
        self, request: Request, response: Response, problems: list[str], fault: bool = False
    ) -> Response:
        self.state.log_request(
            {
                "at": datetime.now(UTC).isoformat(),
                "method": request.method,
                "path": request.url.path,
                "query": str(request.query_params),
                "status": response.status_code,
                "fault": fault,
            }
        )
        if problems:
            with self.state.lock:
                self.state.contract_violations.extend(problems)
            for problem in problems:
                log.warning("contract violation: %s", problem)
        return response


def create_simulator(
    state: SimulatorState | None = None,
    *,
    api_token: str | None = None,
    validate_contract: bool = False,
) -> Starlette:
    """The simulator app over ``state`` (a new empty one if None). With ``api_token`` every
    API request needs ``Authorization: Bearer <api_token>``; with ``validate_contract`` each
    API request and response is checked and problems are added to
    ``state.contract_violations``. The state is also at ``app.state.sim``."""
    state = state if state is not None else SimulatorState()
    api = _Api(state, api_token, load() if validate_contract else None)
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(
        routes=[
            Route(PREFIX + "/{path:path}", api.handle, methods=methods),
            *control_routes(state),
            worker_route(state),
        ],
        # the browser console may be served from another local port
        middleware=[
            Middleware(
                CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"]
            )
        ],
    )
    app.state.sim = state
    return app


def serve(
    port: int, host: str = "127.0.0.1", seed: bool = True, api_token: str | None = None
) -> None:
    """Serve the simulator until interrupted (``releasebot sim cloudflare --port N``)."""
    state = SimulatorState()
    if seed:
        state.seed_example()
    # the contract files ship with the source tree; an install without them still serves
    checked = SUBSET.exists() and ADDITIONS.exists()
    app = create_simulator(state, api_token=api_token, validate_contract=checked)
    print(f"Cloudflare API simulator: CLOUDFLARE_API_BASE_URL=http://{host}:{port}{PREFIX}")
    print(f"account {state.account_id}; controls at http://{host}:{port}/__sim/state")
    uvicorn.run(app, host=host, port=port, log_level="info")
