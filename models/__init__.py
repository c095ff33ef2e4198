"""marshmallow schemas and the data access of each collection."""
