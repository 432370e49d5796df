"""Built-in masks (registered through the xfr entry point 'masks')."""
