"""Pure EHR application logic: state, transaction kinds, rules, access policy, genesis.

Nothing in this package does I/O or reads the clock. The node executes
transactions with ``rules.execute`` (one) or ``executor.execute_block`` /
``executor.select_txs`` (a block), asks ``policy`` whom to wrap keys for and
who may read, and starts a chain from ``genesis.genesis_writes``.
"""
