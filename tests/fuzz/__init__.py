"""Fuzz harnesses over the readers of files a user or a broken copy hands the project."""
