"""ehrchain: a permissioned blockchain for Electronic Health Records."""

__version__ = "0.1.0"
