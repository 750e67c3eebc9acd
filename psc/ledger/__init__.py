"""The aggregator's durable state: the SQLite ledger and the RFC 9162-style transparency log."""
