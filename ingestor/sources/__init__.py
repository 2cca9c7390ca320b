"""Where messages come from. Every source yields Message batches and commits positions it is given."""
