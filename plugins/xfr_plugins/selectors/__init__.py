"""Built-in selectors (registered through the xfr entry point 'selectors')."""
