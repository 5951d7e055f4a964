"""Reading sources and writing build outputs. Stages never touch files; this package does."""
