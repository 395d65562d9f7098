"""haqq's own store: SQLAlchemy 2 Core on SQLite (default) or PostgreSQL."""
