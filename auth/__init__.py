"""OAuth 2 authorization server and token validation; turns a bearer token into a domain Principal."""
