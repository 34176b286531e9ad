"""Who is calling (authenticate.py) and whether they may (roles.py)."""
