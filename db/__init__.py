"""Persistence adapters: tables, engine, repositories. Keeps SQL out of domain/."""
