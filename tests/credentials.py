"""A credential that fails the way azure-identity's do when they give no token: an exception with no status code
(`CredentialUnavailableError`, `ClientAuthenticationError`), until `heal()`; then it gives tokens."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo


class FailingCredential:
    """Raises `error` on every request for a token until `heal()`; `attempts` counts the requests."""

    def __init__(self, error: Exception, token: Callable[[int], str] | str = "token") -> None:
        self.error: Exception | None = error
        self._token = token
        self.attempts = 0

    def heal(self) -> None:
        self.error = None

    def _give(self) -> tuple[str, int]:
        self.attempts += 1
        if self.error is not None:
            raise self.error
        expires_on = int(time.time()) + 3600
        return (self._token(expires_on) if callable(self._token) else self._token), expires_on

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(*self._give())

    async def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo(*self._give())

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> FailingCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass
