"""The REST API of a node: FastAPI app, error mapping, wire schemas.

The public surface is ``create_app`` and the error mapping; routes are
internal and documented by the OpenAPI document the app serves.
"""

from ehrchain.api.app import DEFAULT_MAX_BODY_BYTES, create_app
from ehrchain.api.errors import CODE_STATUS, Problem, problem_for

__all__ = ["CODE_STATUS", "DEFAULT_MAX_BODY_BYTES", "Problem", "create_app", "problem_for"]
