"""Receiver limits: concurrent requests beyond ``max_concurrent_requests`` are refused before they are read."""

from __future__ import annotations

import asyncio

import pytest

from tests.reliability.conftest import capture, receiver_address, running_service
from tests.reliability.faults import Client

pytestmark = pytest.mark.integration


def http_pipeline(max_concurrent_requests: int) -> dict:
    limited = {"endpoint": "127.0.0.1:0", "max_concurrent_requests": max_concurrent_requests}
    return {
        "receivers": {"otlp": {"protocols": {"grpc": limited, "http": limited}}},
        "exporters": {"capture": {}},
        "service": {
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["capture"]}},
            "telemetry": {"metrics": {"readers": []}},
        },
    }


@pytest.mark.parametrize("transport, status", [("http", "http 503"), ("grpc", "UNAVAILABLE")])
async def test_requests_beyond_the_limit_are_told_to_retry_until_one_finishes(transport, status):
    async with running_service(http_pipeline(2)) as service:
        exporter = capture(service)
        exporter.gate.clear()  # the pipeline holds every request
        http = f"http://{receiver_address(service, 'http')}"
        async with Client(receiver_address(service, "grpc"), http, spans_per_request=5) as client:
            held = [asyncio.create_task(client.send(transport)) for _ in range(2)]
            await held_in_pipeline(exporter, 2)
            refusal = await client.send(transport)
            assert (refusal.status, refusal.retry_after) == (status, 1.0)
            assert (
                service.telemetry.value(
                    "otelml_receiver_failed_requests_total", receiver="otlp", transport=transport, reason="too_many_requests"
                )
                == 1
            )
            assert not any(task.done() for task in held)
            exporter.gate.set()
            assert all(outcome.accepted for outcome in await asyncio.gather(*held))
            assert (await client.send(transport)).accepted
        assert exporter.items() == 15
        assert len(client.acknowledged) == 15


async def test_no_limit_by_default():
    async with running_service(http_pipeline(0)) as service:
        exporter = capture(service)
        exporter.gate.clear()
        async with Client(
            receiver_address(service, "grpc"), f"http://{receiver_address(service, 'http')}", spans_per_request=1
        ) as client:
            held = [asyncio.create_task(client.send("http")) for _ in range(20)]
            await held_in_pipeline(exporter, 20)
            exporter.gate.set()
            assert all(outcome.accepted for outcome in await asyncio.gather(*held))


async def held_in_pipeline(exporter, requests: int) -> None:
    """Wait until ``requests`` requests wait at the capture exporter's gate."""
    while exporter.waiting < requests:
        await asyncio.sleep(0.01)
