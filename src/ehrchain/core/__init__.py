"""Pure ledger core: canonical encoding, ids, transactions, blocks, Merkle trees. No I/O."""
