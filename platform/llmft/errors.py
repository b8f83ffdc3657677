"""The platform's error types: each names what is wrong in one line."""


class LlmftError(Exception):
    """Base of every error llmft raises on purpose; the CLI prints its message and exits 1."""


class SpecError(LlmftError):
    """A spec file or override is invalid; the message names the dotted key path."""


class NotFoundError(LlmftError):
    """A named object (tenant, snapshot, job, version) does not exist, or is not the caller's."""


class ConflictError(LlmftError):
    """The request contradicts the current state (e.g. an illegal job transition)."""


class PermissionDeniedError(LlmftError):
    """The actor may not do this (role, tenant, or policy)."""


class IntegrityError(LlmftError):
    """Stored bytes no longer match their recorded sha256 (tampering or corruption)."""


class BudgetExceededError(PermissionDeniedError):
    """A privacy budget (epsilon) would be exceeded."""


class StageFailed(LlmftError):
    """A stage ran to its end but its outcome is a failure (e.g. a divergence guard stopped training)."""

    def __init__(self, message: str, result: dict | None = None) -> None:
        super().__init__(message)
        self.result = result or {}
