"""The OpenAPI contract the simulator is held to: official subset plus hand-written paths."""

from __future__ import annotations

import json

import pytest
from openapi_spec_validator import validate

from bot.cloudflare.contract import ADDITIONS, SUBSET, Contract, load, merged_spec

ACCOUNT = "0123456789abcdef0123456789abcdef"
DEPLOYS = f"/accounts/{ACCOUNT}/workers/scripts/tax-api/deployments"
BEARER = {"authorization": "Bearer t"}


@pytest.fixture(scope="module")
def contract() -> Contract:
    return load()


def test_merged_spec_is_valid_openapi() -> None:
    validate(merged_spec())


def test_subset_is_the_shared_copy_and_additions_are_marked() -> None:
    subset = json.loads(SUBSET.read_text())
    assert subset["x-subset-source"]["commit_date"] == "2024-08-01"
    additions = json.loads(ADDITIONS.read_text())
    assert additions["x-handwritten"].startswith("HAND-WRITTEN, NOT OFFICIAL")
    for item in additions["paths"].values():
        for operation in item.values():
            assert operation["operationId"].startswith("handwritten-")
    assert all(name.startswith("handwritten_") for name in additions["components"]["schemas"])
    assert not set(additions["paths"]) & set(subset["paths"])


def test_every_simulated_operation_is_in_the_contract(contract: Contract) -> None:
    wanted = [
        ("GET", f"/accounts/{ACCOUNT}/workers/scripts/s/versions"),
        ("GET", f"/accounts/{ACCOUNT}/workers/scripts/s/versions/v"),
        ("GET", f"/accounts/{ACCOUNT}/workers/scripts/s/deployments"),
        ("POST", f"/accounts/{ACCOUNT}/workers/scripts/s/deployments"),
        ("GET", f"/accounts/{ACCOUNT}/workers/scripts/s/deployments/d"),
        ("GET", f"/accounts/{ACCOUNT}/d1/database/db"),
        ("GET", f"/accounts/{ACCOUNT}/d1/database/db/time_travel/bookmark"),
        ("POST", f"/accounts/{ACCOUNT}/d1/database/db/time_travel/restore"),
        ("GET", "/user/tokens/verify"),
        ("GET", f"/accounts/{ACCOUNT}/tokens/verify"),
        ("POST", "/graphql"),
    ]
    for method, path in wanted:
        assert contract.find(method, path) is not None, (method, path)
    assert contract.find("PUT", "/user/tokens/verify") is None


def test_request_problems(contract: Contract) -> None:
    op, params = contract.find("POST", DEPLOYS) or pytest.fail("no operation")
    good = json.dumps(
        {"strategy": "percentage", "versions": [{"version_id": "v", "percentage": 100}]}
    ).encode()
    json_type = {**BEARER, "content-type": "application/json"}
    assert contract.check_request(op, params, [("force", "true")], json_type, good) == []

    bad = json.dumps({"strategy": "percentage", "versions": [{"version_id": "v"}]}).encode()
    [problem] = contract.check_request(op, params, [], json_type, bad)
    assert "'percentage' is a required property at versions.0" in problem

    assert any(
        "no credentials" in p
        for p in contract.check_request(op, params, [], {"content-type": "application/json"}, good)
    )
    assert any(
        "query parameter dry_run is not in the contract" in p
        for p in contract.check_request(op, params, [("dry_run", "1")], json_type, good)
    )
    assert any(
        "force" in p and "boolean" in p
        for p in contract.check_request(op, params, [("force", "yes")], json_type, good)
    )
    long_name = contract.find("GET", f"/accounts/{'a' * 40}/workers/scripts/s/versions")
    assert long_name is not None
    problems = contract.check_request(long_name[0], long_name[1], [], BEARER, b"")
    assert any("path parameter account_id" in p and "too long" in p for p in problems)


def test_response_problems(contract: Contract) -> None:
    op, _ = contract.find("GET", "/user/tokens/verify") or pytest.fail("no operation")
    good = {
        "success": True,
        "errors": [],
        "messages": [],
        "result": {"id": "x", "status": "active"},
    }
    assert contract.check_response(op, 200, good) == []
    bogus = {**good, "result": {"id": "x", "status": "bogus"}}
    [problem] = contract.check_response(op, 200, bogus)
    assert "'bogus' is not one of ['active', 'disabled', 'expired'] at result.status" in problem
    assert "status 500 is not in the contract" in contract.check_response(op, 500, {})[0]


def test_failure_responses_are_held_to_the_failure_envelope(contract: Contract) -> None:
    # the official 4XX schema also demands success: true, which no failure can meet
    op, _ = contract.find("GET", DEPLOYS) or pytest.fail("no operation")
    failure = {
        "success": False,
        "errors": [{"code": 10007, "message": "not found"}],
        "messages": [],
        "result": None,
    }
    assert contract.check_response(op, 404, failure) == []
    assert contract.check_response(op, 404, {**failure, "errors": [{"code": 1}]}) != []
