"""The web page's login: passwords checked in constant time, failed attempts rate-limited.

Gradio calls `Login(user, password)` from its `/login` route. That call cannot see the
request, so `ClientAddress`, an ASGI middleware on Gradio's app, puts the client's address in a
context variable first. The limit sits in the password check itself, not in front of the route,
so no spelling of the route and no form encoding gets past it, and it reads the user name exactly
as Gradio does; without the middleware it still limits per user name.
"""

from __future__ import annotations

import hmac
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar

from fastapi import HTTPException

log = logging.getLogger(__name__)

client_address: ContextVar[str | None] = ContextVar("client_address", default=None)


class LoginLocked(Exception):
    """Too many failed logins for a user name or a client address; retry after `retry_after` s."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins; try again in {math.ceil(retry_after)} s")
        self.retry_after = retry_after


class LoginLimiter:
    """Counts failed logins per user name and per client address over a sliding window.

    After `attempts` failures for a name (or from an address) within `window` seconds, further
    attempts for it are refused without a password check until the oldest of those failures
    leaves the window. Refused attempts are not counted, so the lock lifts on time while the
    rate of password checks stays at `attempts` per `window`. A success clears the name's
    failures, not the address's (a valid login must not reset a count of guesses at others).
    """

    def __init__(self, attempts: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts = attempts
        self.window = window
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = clock() + window

    def __len__(self) -> int:
        """How many names and addresses have failures on record."""
        return len(self._failures)

    def wait(self, user: str, address: str | None = None) -> float:
        """Seconds until `user` (from `address`) may try again; 0 when they may now."""
        with self._lock:
            return self._wait(_keys(user, address), self.clock())

    def attempt(self, user: str, address: str | None, check: Callable[[], bool]) -> bool:
        """Run the password `check` unless `user` or `address` is locked; record its result.

        Raises `LoginLocked` without calling `check` when either is locked. The lock is held
        through the check, so concurrent attempts cannot all pass before the first is counted.
        """
        keys = _keys(user, address)
        with self._lock:
            now = self.clock()
            wait = self._wait(keys, now)
            if wait > 0:
                raise LoginLocked(wait)
            if check():
                self._failures.pop(keys[0], None)
                return True
            self._sweep(now)
            for key in keys:
                self._failures.setdefault(key, deque(maxlen=self.attempts)).append(now)
            return False

    def _wait(self, keys: list[tuple[str, str]], now: float) -> float:
        waits = [0.0]
        for key in keys:
            failures = self._failures.get(key)
            if failures is not None and len(failures) == self.attempts:
                waits.append(failures[0] + self.window - now)
        return max(waits)

    def _sweep(self, now: float) -> None:
        """Forget names and addresses whose failures have all left the window (once a window)."""
        if now < self._next_sweep:
            return
        self._failures = {k: v for k, v in self._failures.items() if v[-1] + self.window > now}
        self._next_sweep = now + self.window


def _keys(user: str, address: str | None) -> list[tuple[str, str]]:
    return [("user", user)] + ([("address", address)] if address else [])


class Login:
    """Gradio's `auth` callable: the accounts' passwords compared in constant time, rate-limited.

    A locked name or address is answered as Gradio answers a wrong password (HTTP 400, which
    its login page shows as "Incorrect credentials"), with the wait in the detail and in a
    Retry-After header for other clients. Refusals are logged with the name and the address,
    never the password.
    """

    def __init__(self, accounts: list[tuple[str, str]], limiter: LoginLimiter) -> None:
        self.passwords = {user: password.encode() for user, password in accounts}
        self.limiter = limiter

    def __call__(self, user: str, password: str) -> bool:
        address = client_address.get()
        try:
            ok = self.limiter.attempt(user, address, lambda: self._matches(user, password))
        except LoginLocked as locked:
            seconds = math.ceil(locked.retry_after)
            log.warning(
                "login refused for %.64r from %s: %d failed attempts within %g s, locked for %d s",
                user, address or "an unknown address", self.limiter.attempts, self.limiter.window,
                seconds,
            )  # fmt: skip
            raise HTTPException(
                status_code=400,
                detail=f"Too many failed logins; try again in {seconds} s.",
                headers={"Retry-After": str(seconds)},
            ) from None
        if not ok:
            log.info("login failed for %.64r from %s", user, address or "an unknown address")
        return ok

    def _matches(self, user: str, password: str) -> bool:
        expected = self.passwords.get(user)
        # an unknown name is compared too, so the time taken does not tell which names exist
        given = password.encode(errors="surrogatepass")  # a lone surrogate is a wrong password, not a 500
        same = hmac.compare_digest(given, expected if expected is not None else b"\0")
        return same and expected is not None


class ClientAddress:
    """ASGI middleware: the client's address in `client_address` while a request is handled."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        token = client_address.set(client[0] if client else None)
        try:
            await self.app(scope, receive, send)
        finally:
            client_address.reset(token)
