"""The node: the only package that assembles ledger, state machine, consensus and API."""
