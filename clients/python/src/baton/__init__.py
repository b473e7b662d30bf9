"""Generated Baton API client (see clients/README.md)."""
