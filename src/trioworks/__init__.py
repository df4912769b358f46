"""trioworks: three asyncio systems rebuilt on Trio structured concurrency.

Subpackages:

- :mod:`trioworks.core`: offload, retry, supervision and metrics shared by every subsystem.
- :mod:`trioworks.dag`: a Kailash-compatible workflow builder and a Trio DAG runtime.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
