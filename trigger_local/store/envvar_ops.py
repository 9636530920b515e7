"""The store's operations for environment variables (TRIGGER_API.md §10), one set per
environment slug. Mixed into `Ops`: every method runs inside the transaction or read it was
obtained from."""

from __future__ import annotations

from typing import Any


class EnvVarOps:
    _db: Any

    async def _one(self, sql: str, params: Any = ()) -> Any: ...  # provided by Ops
    async def _all(self, sql: str, params: Any = ()) -> list[Any]: ...  # provided by Ops

    async def list_env_vars(self, env: str) -> list[dict[str, Any]]:
        rows = await self._all("SELECT name, value, is_secret FROM env_vars WHERE env = ? ORDER BY name", (env,))
        return [{"name": r["name"], "value": r["value"], "isSecret": bool(r["is_secret"])} for r in rows]

    async def get_env_var(self, env: str, name: str) -> dict[str, Any] | None:
        row = await self._one("SELECT name, value, is_secret FROM env_vars WHERE env = ? AND name = ?", (env, name))
        return None if row is None else {"name": row["name"], "value": row["value"],
                                         "isSecret": bool(row["is_secret"])}

    async def put_env_var(self, env: str, name: str, value: str, is_secret: bool | None, now: float,
                          *, override: bool = True) -> None:
        """Insert or (with `override`) replace; `is_secret=None` keeps an existing flag."""
        conflict = ("DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
                    "is_secret = COALESCE(:keep_secret, env_vars.is_secret)") if override else "DO NOTHING"
        await self._db.execute(
            "INSERT INTO env_vars (env, name, value, is_secret, updated_at) "
            f"VALUES (:env, :name, :value, COALESCE(:keep_secret, 0), :now) ON CONFLICT (env, name) {conflict}",
            {"env": env, "name": name, "value": value, "now": now,
             "keep_secret": None if is_secret is None else int(is_secret)})

    async def delete_env_var(self, env: str, name: str) -> bool:
        cur = await self._db.execute("DELETE FROM env_vars WHERE env = ? AND name = ?", (env, name))
        return bool(cur.rowcount)
