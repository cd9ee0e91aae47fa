"""Character identities: the portable ``.character`` format, anchor caches, and panels for saved characters."""

from .identity_file import Identity, IdentityError, read_identity, write_identity

__all__ = ["Identity", "IdentityError", "read_identity", "write_identity"]
