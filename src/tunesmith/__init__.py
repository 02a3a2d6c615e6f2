"""tunesmith: learn folk melodies with an LSTM and compose new ones."""

__version__ = "0.1.0"
