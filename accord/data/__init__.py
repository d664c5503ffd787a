"""Data: sources, validation, schema, columns, the training split, tables read and written in chunks."""
