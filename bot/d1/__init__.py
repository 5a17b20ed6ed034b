"""D1 migration files: where they come from (a folder on the bot's host) and the lint that
reads them with a real SQL parser (sqlglot's SQLite dialect)."""
