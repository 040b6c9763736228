"""Consensus: deciding when to seal a block and proving it final. Pure, no I/O, no clock.

``certificate`` checks commit certificates, ``base`` is the interface every
engine implements, ``solo`` is the single-validator engine (BFT with n = 1).
Consensus never imports ``ehr``: it sees headers, votes and validator keys only.
"""
