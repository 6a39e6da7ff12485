"""Storage: tables, migrations, the serialized writer, and queries."""
