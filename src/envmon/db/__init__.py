"""Storage: the embedded PostgreSQL cluster, migrations, the pool and the writer."""
