"""Small real datasets bundled with skmoe, for examples and tests."""

from ._base import load_california_housing

__all__ = ["load_california_housing"]
