"""The Python SDK: build, encrypt and sign locally; talk to a node over HTTP.

Private keys never leave the process that uses them. ``EhrClient`` mirrors the
REST API one route per method; ``Actor`` (an identity plus a client) runs the
whole story: registration, consent, encrypted records, grants, reads, audit.
"""

from ehrchain.client.actor import DEFAULT_WAIT_S, FHIR_RELEASES, Actor
from ehrchain.client.emergency import open_reason, seal_reason
from ehrchain.client.errors import (
    ApiError,
    BadRequest,
    ClientError,
    Conflict,
    Forbidden,
    InvalidRequest,
    MissingData,
    NotFound,
    PayloadTooLarge,
    ServerError,
    TransportError,
    TxTimeout,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)
from ehrchain.client.http import (
    KIND_ROUTES,
    BatchOutcome,
    EhrClient,
    Readers,
    ReadResult,
    Submitted,
)
from ehrchain.client.identity import PublicIdentity, new_identity, public_identity
from ehrchain.ehr.values import Scope

__all__ = [
    "DEFAULT_WAIT_S",
    "FHIR_RELEASES",
    "KIND_ROUTES",
    "Actor",
    "ApiError",
    "BadRequest",
    "BatchOutcome",
    "ClientError",
    "Conflict",
    "EhrClient",
    "Forbidden",
    "InvalidRequest",
    "MissingData",
    "NotFound",
    "PayloadTooLarge",
    "PublicIdentity",
    "ReadResult",
    "Readers",
    "Scope",
    "ServerError",
    "Submitted",
    "TransportError",
    "TxTimeout",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
    "new_identity",
    "open_reason",
    "public_identity",
    "seal_reason",
]
