"""Example tasks written by `trigger-local init`. Try them:

    trigger-local dev                                   # in one terminal
    trigger-local trigger hello --payload '{"name": "Ada"}' --wait
    trigger-local trigger process-order --payload '{"order_id": 42}' --wait
    trigger-local trigger flaky --wait
"""

from __future__ import annotations

from typing import Any

from trigger_local import Context, Retry, logger, task, wait

Json = dict[str, Any]


@task(id="hello")
async def hello(payload: Json | None, ctx: Context) -> Json:
    name = (payload or {}).get("name", "world")
    logger.info("greeting", name=name)
    return {"message": f"Hello, {name}!"}


@task(id="slow-hello")
async def slow_hello(payload: Json | None, ctx: Context) -> Json:
    # The run is WAITING meanwhile: it holds no concurrency slot, and survives a daemon restart.
    logger.info("waiting five seconds")
    await wait.for_(seconds=5)
    return {"message": f"Hello, {(payload or {}).get('name', 'world')}, five seconds later!"}


@task(id="charge-card")
async def charge_card(payload: Json, ctx: Context) -> Json:
    logger.info("charging", order_id=payload["order_id"], amount=payload["amount"])
    return {"charge_id": f"ch_{payload['order_id']}", "amount": payload["amount"]}


@task(id="process-order")
async def process_order(payload: Json | None, ctx: Context) -> Json:
    order_id = (payload or {}).get("order_id", 1)
    # Triggers the child and waits for its result; `unwrap()` raises if the child failed.
    charge = await charge_card.trigger_and_wait({"order_id": order_id, "amount": 1999})
    receipt = charge.unwrap()
    logger.info("charged", charge_id=receipt["charge_id"])
    return {"order_id": order_id, "charge_id": receipt["charge_id"], "status": "paid"}


@task(id="flaky", retry=Retry(max_attempts=3, min_timeout_s=1))
async def flaky(payload: Json | None, ctx: Context) -> Json:
    # Fails on its first two attempts; the daemon retries it after a backoff each time.
    attempt = ctx.attempt.number
    if attempt < 3:
        raise RuntimeError(f"attempt {attempt} failed on purpose")
    return {"succeeded_on_attempt": attempt}
