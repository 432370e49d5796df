"""Built-in explainers (registered through the xfr entry point 'explainers')."""
