"""A run that waits for a human, crashes afterwards, and is retried: thanks to the idempotency
keys the retried attempt neither waits nor asks the human again (docs/waits.md)."""

from __future__ import annotations

import time

from trigger_local import Retry, task, wait


@task(id="idempotent-approval", retry=Retry(max_attempts=2, min_timeout_s=0.1, max_timeout_s=0.1))
async def idempotent_approval(payload, ctx):
    # The same key on every attempt of this run: attempt 2 gets attempt 1's token back,
    # already completed, so the approval is not asked for twice.
    token = await wait.create_token(idempotency_key=f"approval-{ctx.run.id}", timeout="1h",
                                    tags=["approval"])
    started = time.time()
    # Wait keys are scoped to the run: attempt 2 finds this wait already done and goes on.
    await wait.for_(seconds=payload.get("cool_down_s", 2), idempotency_key="cool-down")
    waited = time.time() - started
    decision = (await wait.for_token(token)).unwrap()
    if ctx.attempt.number == 1 and payload.get("crash_once", True):
        raise RuntimeError("simulated crash after the approval arrived")
    return {"attempt": ctx.attempt.number, "token": token.id, "decision": decision,
            "waited_s": round(waited, 3)}
