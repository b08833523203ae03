"""imgstore: houses long scientific video recordings and their metadata."""
__version__ = "1.0.0.dev0"
