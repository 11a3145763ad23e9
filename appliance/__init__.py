"""Herald: a self-hosted hub for OctoPrint printers."""

__version__ = "0.1.0"
