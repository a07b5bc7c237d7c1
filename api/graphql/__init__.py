"""The GraphQL layer: thin resolvers that parse, call one use case, and map the result."""
