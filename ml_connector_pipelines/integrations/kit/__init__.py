"""The integration kit: what every pair is built from."""
