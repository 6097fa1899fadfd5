"""Configuration: where sor.yml comes from, its schema and rules, the frozen model."""
