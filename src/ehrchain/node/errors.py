"""Errors the node service raises on its own account.

NodeError
├── Rejected          a transaction or block the node refuses (carries a code)
├── NotFoundError     the thing asked for does not exist
├── PayloadTooLarge   a body or blob over the configured limit
└── Unavailable       the node cannot serve this now (e.g. shutting down)
"""


class NodeError(Exception):
    """Base of the node's own errors."""

    code = "node_error"


class Rejected(NodeError):
    """The node refuses the input; ``code`` says why in one word."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class NotFoundError(NodeError):
    code = "not_found"


class PayloadTooLarge(NodeError):
    code = "too_large"


class Unavailable(NodeError):
    code = "unavailable"
