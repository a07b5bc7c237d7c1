"""Pamoja's rules, kept free of web and database frameworks so they can be tested and trusted alone."""
