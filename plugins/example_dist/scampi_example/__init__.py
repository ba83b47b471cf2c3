"""An example third-party SCAMPI plugin (installed with pip, found through entry points)."""
