"""Example tasks: try them with `trigger-local trigger hello --payload '{"name": "Ada"}' --wait`."""

from __future__ import annotations

from trigger_local import AbortTaskRunError, Retry, logger, metadata, task, wait


@task(id="hello")
async def hello(payload: dict, ctx) -> dict:
    name = payload.get("name", "world")
    logger.info("saying hello", name=name)
    return {"message": f"Hello, {name}!"}


@task(id="slow-greeting")
async def slow_greeting(payload: dict, ctx) -> dict:
    """Waits without losing its place: the run is WAITING for five seconds, then carries on."""
    name = payload.get("name", "world")
    metadata.set("step", "waiting")
    await wait.for_(seconds=5)
    metadata.set("step", "done")
    return {"message": f"Hello, {name}, after a pause."}


@task(id="parent")
async def parent(payload: dict, ctx) -> dict:
    """Triggers a child run and waits for its result."""
    result = await hello.trigger_and_wait({"name": payload.get("name", "child")})
    with logger.trace("shout"):
        shouted = result.unwrap()["message"].upper()
    return {"child_run": result.id, "shouted": shouted}


@task(id="flaky", retry=Retry(max_attempts=3, min_timeout_s=1, max_timeout_s=5))
async def flaky(payload: dict, ctx) -> dict:
    """Fails on its first two attempts, then succeeds: watch the retries in `runs show`.
    Its own retry policy (3 attempts), so it does not depend on trigger.toml's default."""
    logger.info("trying", attempt=ctx.attempt.number)
    if payload.get("give_up"):
        raise AbortTaskRunError("asked to give up: no retries")
    if ctx.attempt.number < 3:
        raise RuntimeError(f"attempt {ctx.attempt.number} failed (on purpose)")
    return {"succeeded_on_attempt": ctx.attempt.number}


@task(id="approval")
async def approval(payload: dict, ctx) -> dict:
    """Waits for a human: complete the token with `trigger-local tokens complete ID --data '{"ok": true}'`."""
    token = await wait.create_token(timeout="1h", tags=["approval"])
    logger.info("waiting for approval", token=token.id, url=token.url)
    metadata.set("token", token.id)
    result = await wait.for_token(token)
    return {"approved": result.ok and bool((result.output or {}).get("ok"))}
