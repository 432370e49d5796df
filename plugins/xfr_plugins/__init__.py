"""xfr's built-in plugins: the paper's methods and the baselines.

They register through the ``xfr`` entry-point group exactly as a third party's plugin would;
the core (``xfr``) never imports this package.
"""
