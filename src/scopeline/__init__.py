"""scopeline: quality control and processing of microscopy movies."""

__version__ = "0.1.0"
