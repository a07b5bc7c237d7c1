"""What the authorization server needs from Settings, as one frozen value (auth/ does not import api/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from auth.clients import ASSERTION_ALGORITHMS
from auth.login import ThrottlePolicy
from domain.scopes import ROLE_CEILING, SYSTEM_CEILING

if TYPE_CHECKING:
    from config.settings import Settings

# SMART Backend Services: a system token lives at most this long.
MAX_SYSTEM_TOKEN_SECONDS = 300
AUTHORIZATION_CODE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class OAuthConfig:
    issuer: str
    audience: str
    public_url: str
    production: bool
    staff_token_seconds: int
    system_token_seconds: int
    refresh_token_seconds: int
    rate_limit_storage: str
    token_rate_per_client: str
    token_rate_per_address: str
    login_rate_per_client: str
    login_rate_per_address: str
    throttle: ThrottlePolicy

    @classmethod
    def from_settings(cls, settings: Settings) -> OAuthConfig:
        return cls(
            issuer=settings.issuer,
            audience=settings.audience,
            public_url=settings.public_url,
            production=settings.is_production,
            staff_token_seconds=settings.staff_token_ttl_seconds,
            system_token_seconds=min(settings.system_token_ttl_seconds, MAX_SYSTEM_TOKEN_SECONDS),
            refresh_token_seconds=settings.refresh_token_ttl_seconds,
            rate_limit_storage=settings.rate_limit_storage,
            token_rate_per_client=settings.token_rate_limit_per_client,
            token_rate_per_address=settings.token_rate_limit_per_address,
            login_rate_per_client=settings.login_rate_limit_per_client,
            login_rate_per_address=settings.login_rate_limit_per_address,
            throttle=ThrottlePolicy(
                slowdown_after=settings.login_slowdown_after_failures,
                slowdown_base_seconds=settings.login_slowdown_base_seconds,
                lockout_after=settings.login_lockout_after_failures,
                lockout_seconds=settings.login_lockout_seconds,
            ),
        )

    @property
    def longest_token_seconds(self) -> int:
        """How long a retiring signing key must stay published: the longest access token we mint."""
        return max(self.staff_token_seconds, self.system_token_seconds)

    @property
    def token_endpoint(self) -> str:
        return f"{self.public_url}/oauth/token"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.public_url}/oauth/authorize"

    def metadata(self) -> dict[str, object]:
        """RFC 8414 authorization server metadata."""
        scopes = sorted({s for ceiling in (*ROLE_CEILING.values(), *SYSTEM_CEILING.values()) for s in ceiling})
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "jwks_uri": f"{self.public_url}/.well-known/jwks.json",
            "revocation_endpoint": f"{self.public_url}/oauth/revoke",
            "introspection_endpoint": f"{self.public_url}/oauth/introspect",
            "scopes_supported": scopes,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic", "client_secret_post", "private_key_jwt", "none",
            ],
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic", "client_secret_post", "private_key_jwt", "none",
            ],
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic", "client_secret_post", "private_key_jwt",
            ],
            "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
            "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": False,
        }
