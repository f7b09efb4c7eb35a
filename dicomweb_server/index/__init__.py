"""The metadata index: schema and migrations, ingest, QIDO search and retrieval look-ups.

One query module serves SQLite and PostgreSQL (SQLAlchemy Core). Functions are named by what
they return: ``get_*`` one row or ``NotFound``, ``find_*`` a possibly empty list, ``count_*``
an int, and ``insert_*``, ``mark_*``, ``delete_*`` change state. Each takes the connection, so
the caller owns the transaction.
"""
