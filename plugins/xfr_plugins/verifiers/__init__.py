"""Built-in verifiers (registered through the xfr entry point 'verifiers')."""
