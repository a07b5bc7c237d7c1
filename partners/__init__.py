"""Partner network: service directory, matching, webhooks to partner systems."""
