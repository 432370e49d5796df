"""Built-in attention (registered through the xfr entry point 'attention')."""
