"""mailwarden: an anti-spam gateway and e-mail authentication toolkit."""

__version__ = "0.1.0"
