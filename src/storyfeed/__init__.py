"""storyfeed: a terminal feed reader with a SQLite cache."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/storyfeed/storyfeed"
