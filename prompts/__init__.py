"""Prompt templates shipped as package data, and the loader that renders them."""
