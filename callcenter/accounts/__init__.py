"""User accounts of the console and the API: roles, password and token hashes, sign-in failures."""
