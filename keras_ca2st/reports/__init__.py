"""Pictures and tables of what models and runs did.

Every figure the guides and the `ca2st` commands show comes from here, so a
user draws the common plots with one call (matplotlib, imported on first use).
"""
