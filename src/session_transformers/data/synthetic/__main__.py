"""``python -m session_transformers.data.synthetic``: write the store (see :func:`main`)."""

from .writing import main

main()
