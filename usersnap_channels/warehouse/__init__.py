"""The DuckDB tables and the only code that writes them (it writes what it is given)."""
