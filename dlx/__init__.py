"""dlx: deep-learning experiments from the command line.

Importing the package is cheap on purpose: nothing here pulls in JAX, so `dlx --help`
and argument errors stay instant.
"""

__version__ = "0.1.0"
