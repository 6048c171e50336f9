"""Deliberately not a Strategy (no ``on_features``): the loader's error names what is missing."""


class NoHandler:
    name = "no_handler"
