"""Everything that talks to a model: requests, the client factory, the mock, the cache and the engine."""
