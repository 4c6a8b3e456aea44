"""Thin click commands; each module holds the commands of one feature."""
