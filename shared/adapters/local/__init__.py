"""The ports on one machine: SQLite, folders, local processes and network namespaces as nodes."""
