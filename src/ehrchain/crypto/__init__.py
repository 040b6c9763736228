"""Thin wrappers over the crypto libraries (pynacl, cryptography, argon2-cffi).

Nothing here implements a primitive: every function calls a vetted library.
"""
