"""MemoriesDB runner: services the ledger's embedding and vindexing queues."""

__version__ = "0.3.0"
