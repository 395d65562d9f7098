"""Typed errors of the data-exchange layer, as the X-Road REST protocol tells them apart.

A response with an ``X-Road-Error`` header comes from a security server: ``Client.*`` means our
request was wrong (not retried), ``Server.ServerProxy.*`` the provider's side, and
``Server.ClientProxy.*`` our own security server. A response without it comes from the
provider's information system itself. All are :class:`InstitutionError`, which the pipeline
handles by retrying the case later and, after its last attempt, sending it to a person.
"""

from __future__ import annotations

from haqq.domain.errors import InstitutionError

#: Provider-side X-Road errors that say nothing about our request: worth another try.
TRANSIENT_TYPES = (
    "Server.ServerProxy.NetworkError",
    "Server.ServerProxy.ServiceFailed",
    "Server.ServerProxy.ServiceUnavailable",
    "Server.ServerProxy.Timeout",
    "Server.ClientProxy.NetworkError",
    "Server.ClientProxy.ServiceFailed",
    "Server.ClientProxy.Timeout",
)
#: Provider HTTP statuses worth another try (without an X-Road-Error header).
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


class XRoadError(InstitutionError):
    """A request through the data-exchange layer failed."""

    transient = False

    def __init__(
        self, message: str, *, service: str, error_type: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.error_type = error_type
        self.status = status


class XRoadClientError(XRoadError):
    """The security server refused our request as malformed or not allowed (``Client.*``,
    access denied, unknown service): sending it again would fail again."""


class ProviderUnreachable(XRoadError):
    """The provider did not answer: network error, timeout, service failure or down."""

    transient = True


class ProviderError(XRoadError):
    """The provider's information system answered with an error of its own."""

    def __init__(
        self, message: str, *, service: str, error_type: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, service=service, error_type=error_type, status=status)
        self.transient = status in TRANSIENT_STATUSES


class SecurityServerError(XRoadError):
    """A security server failed for a reason of its own (``Server.*`` not about the provider)."""

    transient = True


class CircuitOpen(ProviderUnreachable):
    """Calls to this institution are paused after repeated failures; no request was sent."""

    transient = False


def classify(error_type: str, message: str, *, service: str, status: int) -> XRoadError:
    """The typed error of an ``X-Road-Error`` response."""
    if error_type.startswith("Client.") or error_type.endswith(
        (".AccessDenied", ".UnknownService", ".UnknownMember", ".ServiceDisabled")
    ):
        return XRoadClientError(f"{error_type}: {message}", service=service, error_type=error_type, status=status)
    if error_type in TRANSIENT_TYPES or error_type.startswith("Server.ServerProxy."):
        return ProviderUnreachable(f"{error_type}: {message}", service=service, error_type=error_type, status=status)
    return SecurityServerError(f"{error_type}: {message}", service=service, error_type=error_type, status=status)
